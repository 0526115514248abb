"""boards: boards, applications (rooms and their two members) and matches."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from opentelemetry.trace import TracerProvider

from duochat_boards.config import Settings
from duochat_boards.evidence import ChatHistory, MessageSource
from duochat_boards.outbox import Outbox
from duochat_boards.routes import router
from duochat_common.app import build_app
from duochat_common.db import Database
from duochat_common.events import EventBus
from duochat_common.ratelimit import WindowLimiter
from duochat_common.redis_store import create_redis, ping
from duochat_common.telemetry import Telemetry
from duochat_common.tokens import TokenVerifier, http_jwks_fetcher


def jwks_verifier(settings: Settings) -> TokenVerifier:
    """Verifies access tokens against auth's published keys."""
    return TokenVerifier(
        http_jwks_fetcher(settings.auth_jwks_url),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        cache_seconds=settings.jwks_cache_seconds,
    )


def create_app(
    settings: Settings | None = None,
    *,
    verifier: TokenVerifier | None = None,
    database: Database | None = None,
    tracer_provider: TracerProvider | None = None,
    message_source: MessageSource | None = None,
) -> FastAPI:
    """The boards app. ``verifier`` and ``database`` replace the ones built from ``settings``
    (tests sign their own tokens and run each test in a transaction they roll back); a given
    database stays open when the app stops, as its owner disposes of it. ``tracer_provider``
    traces into it instead of the OTLP export the settings ask for. ``message_source``
    replaces chat's history API (``settings.chat_url``) as where reports copy messages from."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = database or Database(settings.database_url)
        redis = create_redis(
            settings.redis_url,
            max_connections=settings.redis_max_connections,
            cluster=settings.redis_cluster,
        )
        bus = EventBus(redis)
        outbox = Outbox(
            db=db,
            bus=bus,
            stream_key=settings.key,
            grace_seconds=settings.outbox_grace_seconds,
            retention_seconds=settings.outbox_retention_seconds,
        )
        app.state.db = db
        app.state.redis = redis
        app.state.bus = bus
        app.state.outbox = outbox
        app.state.report_limiter = WindowLimiter(
            redis,
            prefix=settings.redis_prefix,
            name="boards:reports",
            limit=settings.reports_per_window,
            window_seconds=settings.report_window_seconds,
        )
        app.state.verifier = verifier or jwks_verifier(settings)
        http = httpx.AsyncClient(timeout=5.0)
        app.state.message_source = message_source or ChatHistory(http, settings.chat_url)
        relay = None
        if settings.outbox_relay_seconds > 0:
            relay = asyncio.create_task(
                outbox.run(interval=settings.outbox_relay_seconds), name="boards-outbox-relay"
            )
        try:
            yield
        finally:
            if relay is not None:
                relay.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await relay
            await redis.aclose()
            await http.aclose()
            if database is None:
                await db.dispose()

    app = build_app(
        title="duochat boards",
        routers=[router],
        lifespan=lifespan,
        health_checks=lambda a: {"database": a.state.db.ping, "redis": lambda: ping(a.state.redis)},
        telemetry=Telemetry.of("boards", settings, tracer_provider=tracer_provider),
    )
    app.state.settings = settings
    return app
