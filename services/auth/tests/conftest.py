"""auth's suite runs against real MariaDB and Redis.

One database per session, migrated once. Each test gets its own app, a Redis namespace of its
own, and (by default) one transaction that is rolled back at the end: the app's session factory
is bound to a single connection, and every commit inside the app only releases a savepoint.
Tests that need real concurrency (several connections) take a database of their own instead.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import async_sessionmaker

from duochat_auth.config import Settings
from duochat_auth.main import create_app
from duochat_auth.migrate import migrate
from duochat_common.redis_store import create_redis
from duochat_common.testing import REDIS_URL, mariadb_database, unique_prefix

PASSWORD = "correct horse battery"

# argon2 at its production cost takes about half a second per hash on these machines.
CHEAP_HASHING: dict[str, Any] = {
    "password_time_cost": 1,
    "password_memory_kib": 1024,
    "password_parallelism": 1,
}


def new_name() -> str:
    return f"u{uuid.uuid4().hex[:12]}"


@dataclass
class Account:
    id: int
    username: str
    password: str
    access: str = ""
    refresh: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}


class Api:
    """An auth app under test and a client that talks to it in-process."""

    def __init__(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        self.app = app
        self.client = client

    @property
    def settings(self) -> Settings:
        settings: Settings = self.app.state.settings
        return settings

    async def register(self, username: str | None = None, password: str = PASSWORD) -> Account:
        username = username or new_name()
        response = await self.client.post(
            "/auth/register", json={"username": username, "password": password}
        )
        assert response.status_code == 201, response.text
        return Account(id=response.json()["id"], username=username, password=password)

    async def login(self, account: Account, **kwargs: Any) -> httpx.Response:
        return await self.client.post(
            "/auth/login",
            json={"username": account.username, "password": account.password},
            **kwargs,
        )

    async def signed_in(self, username: str | None = None) -> Account:
        """A registered user holding a fresh token pair."""
        account = await self.register(username)
        response = await self.login(account)
        assert response.status_code == 200, response.text
        account.access = response.json()["accessToken"]
        account.refresh = response.json()["refreshToken"]
        return account

    async def me(self, token: str) -> httpx.Response:
        return await self.client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})

    async def refresh(self, token: str) -> httpx.Response:
        return await self.client.post("/auth/refresh", json={"refreshToken": token})


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    with mariadb_database("auth") as url:
        migrate(Settings(database_url=url))
        yield url


@pytest.fixture
def fresh_database_url() -> Iterator[str]:
    """A database of this test's own, for tests that need several connections at once."""
    with mariadb_database("authx") as url:
        migrate(Settings(database_url=url))
        yield url


SettingsFactory = Callable[..., Settings]


@pytest.fixture
def make_settings(database_url: str) -> SettingsFactory:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "environment": "test",
            "database_url": database_url,
            "redis_url": REDIS_URL,
            "redis_prefix": unique_prefix(),
            **CHEAP_HASHING,
        }
        values.update(overrides)
        return Settings(**values)

    return make


async def _drop_namespace(settings: Settings) -> None:
    if not settings.redis_prefix or not settings.redis_url.startswith("redis://"):
        return
    redis = create_redis(settings.redis_url)
    try:
        keys = [k async for k in redis.scan_iter(match=f"{settings.redis_prefix}*", count=500)]
        if keys:
            await redis.delete(*keys)
    except Exception:
        pass
    finally:
        await redis.aclose()


@asynccontextmanager
async def _serve(settings: Settings, *, isolated: bool = True) -> AsyncIterator[Api]:
    app = create_app(settings)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://auth") as client:
                if not isolated:
                    yield Api(app, client)
                    return
                async with app.state.db.engine.connect() as conn:
                    outer = await conn.begin()
                    app.state.db.sessions = async_sessionmaker(
                        bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False
                    )
                    try:
                        yield Api(app, client)
                    finally:
                        await outer.rollback()
    finally:
        await _drop_namespace(settings)


Serve = Callable[..., AbstractAsyncContextManager[Api]]


@pytest.fixture
def serve() -> Serve:
    """``async with serve(settings) as api``: an app of a test's own settings."""
    return _serve


@pytest.fixture
async def api(make_settings: SettingsFactory) -> AsyncIterator[Api]:
    async with _serve(make_settings()) as api:
        yield api
