"""auth's suite runs against real MariaDB and Redis.

One database per session, migrated once, and one running app shared by the tests that need no
settings of their own. Each test gets a Redis namespace of its own and one transaction that is
rolled back at the end: the app's session factory is bound to a single connection, and every
commit inside the app only releases a savepoint. Tests with settings of their own start their
own app (``serve``); tests that need real concurrency (several connections) also take a
database of their own.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import async_sessionmaker

from duochat_auth.config import Settings
from duochat_auth.main import create_app, login_limiter
from duochat_auth.ratelimit import WindowLimiter
from duochat_common.services import service
from duochat_common.testing import REDIS_URL, mariadb_database, unique_prefix

PASSWORD = "correct horse battery"

# argon2 at its production cost takes about half a second per hash on these machines.
CHEAP_HASHING: dict[str, Any] = {
    "password_time_cost": 1,
    "password_memory_kib": 1024,
    "password_parallelism": 1,
    # Every test client is one address; the tests of the limit set their own.
    "register_max_per_address": 10_000,
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
        service("auth").migrate(Settings(database_url=url))
        yield url


@pytest.fixture
def fresh_database_url() -> Iterator[str]:
    """A database of this test's own, for tests that need several connections at once."""
    with mariadb_database("authx") as url:
        service("auth").migrate(Settings(database_url=url))
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


async def _drop_namespace(redis: Redis, prefix: str) -> None:
    keys = [k async for k in redis.scan_iter(match=f"{prefix}*", count=1000)]
    if keys:
        await redis.delete(*keys)


@asynccontextmanager
async def _own_transaction(app: FastAPI) -> AsyncIterator[None]:
    """Bind the app's sessions to one connection whose outer transaction is rolled back."""
    db = app.state.db
    original = db.sessions
    async with db.engine.connect() as conn:
        outer = await conn.begin()
        db.sessions = async_sessionmaker(
            bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        try:
            yield
        finally:
            db.sessions = original
            await outer.rollback()


@asynccontextmanager
async def _serve(settings: Settings, *, isolated: bool = True) -> AsyncIterator[Api]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://auth") as client:
            try:
                if isolated:
                    async with _own_transaction(app):
                        yield Api(app, client)
                else:
                    yield Api(app, client)
            finally:
                with contextlib.suppress(RedisError):  # an unreachable Redis keeps nothing
                    await _drop_namespace(app.state.redis, settings.redis_prefix)


Serve = Callable[..., AbstractAsyncContextManager[Api]]


@pytest.fixture
def serve() -> Serve:
    """``async with serve(settings) as api``: an app of a test's own settings."""
    return _serve


@pytest.fixture(scope="session")
async def shared_api(database_url: str) -> AsyncIterator[Api]:
    """One running app for the tests that need no settings of their own."""
    settings = Settings(
        environment="test",
        database_url=database_url,
        redis_url=REDIS_URL,
        redis_prefix=unique_prefix(),
        **CHEAP_HASHING,
    )
    async with _serve(settings, isolated=False) as api:
        yield api


@pytest.fixture
async def api(shared_api: Api) -> AsyncIterator[Api]:
    """The shared app, inside a transaction of this test's own and a fresh Redis namespace."""
    app = shared_api.app
    settings = shared_api.settings
    prefix = unique_prefix()
    app.state.limiter = login_limiter(app.state.redis, settings, prefix=prefix)
    app.state.signups = WindowLimiter(
        app.state.redis,
        prefix=prefix,
        name="register",
        limit=settings.register_max_per_address,
        window_seconds=settings.register_window_seconds,
    )
    try:
        async with _own_transaction(app):
            yield shared_api
    finally:
        await _drop_namespace(app.state.redis, prefix)
