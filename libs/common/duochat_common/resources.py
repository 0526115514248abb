"""The database and the Redis client a service's lifespan opens, and closes, the same way in
every service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis
from starlette.datastructures import State

from duochat_common.db import Database
from duochat_common.redis_store import create_redis
from duochat_common.settings import ServiceSettings


def open_redis(settings: ServiceSettings) -> Redis:
    """The Redis client (or cluster client) the settings name."""
    return create_redis(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        cluster=settings.redis_cluster,
    )


@asynccontextmanager
async def opened(
    state: State, settings: ServiceSettings, *, database: Database | None = None
) -> AsyncIterator[tuple[Database, Redis]]:
    """Open the service's database (``database`` when given) and Redis, keep them in
    ``state.db`` and ``state.redis`` (what ``/readyz`` checks), and close them on exit; a given
    database stays open, as its owner disposes of it."""
    db = database or Database(settings.database_url)
    redis = open_redis(settings)
    state.db = db
    state.redis = redis
    try:
        yield db, redis
    finally:
        await redis.aclose()
        if database is None:
            await db.dispose()
