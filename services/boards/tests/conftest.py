"""Fixtures: a real MariaDB (one database per session, one rolled-back transaction per test),
real Redis under a per-test namespace, and access tokens from a stand-in signer."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import async_sessionmaker

from duochat_boards.config import Settings
from duochat_boards.main import create_app
from duochat_common.db import Database
from duochat_common.errors import Unavailable
from duochat_common.events import Envelope
from duochat_common.events.schemas import BOARDS_STREAM
from duochat_common.redis_store import create_redis
from duochat_common.services import service
from duochat_common.testing import REDIS_URL, TestSigner, mariadb_database, unique_prefix


@dataclass(frozen=True)
class Caller:
    """A signed-in user as the tests see them."""

    id: int
    username: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def ref(self) -> dict[str, Any]:
        return {"id": self.id, "username": self.username}


class ChatMessages:
    """chat's messages as boards sees them (``MessageSource``), kept in memory: rooms the tests
    fill, and the token each question came with. The real source, chat's history API, is
    tested against real chat in tests/integration."""

    def __init__(self) -> None:
        self.rooms: dict[str, dict[int, dict[str, Any]]] = {}
        self.asked: list[tuple[str, str]] = []
        self.down = False

    def add(self, room_id: str, message_id: int, sender: str, text: str) -> None:
        self.rooms.setdefault(room_id, {})[message_id] = {
            "id": message_id,
            "type": "TALK",
            "sender": sender,
            "message": text,
            "createdAt": "2026-01-05T09:30:00.123Z",
            "deleted": False,
        }

    async def messages(
        self, *, room_id: str, ids: Sequence[int], token: str
    ) -> list[dict[str, Any]]:
        self.asked.append((room_id, token))
        if self.down:
            raise Unavailable("chat does not answer; try again", retry_after=5)
        room = self.rooms.get(room_id, {})
        return [copy.deepcopy(room[i]) for i in sorted(ids) if i in room]


class Api:
    """Short calls for the steps most tests repeat; each asserts its happy status."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def create_board(
        self, user: Caller, title: str = "morning run", content: str | None = "6am, river park"
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"title": title}
        if content is not None:
            body["content"] = content
        response = await self.client.post("/boards", json=body, headers=user.headers)
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def apply(self, user: Caller, board_id: int) -> dict[str, Any]:
        response = await self.client.post(f"/boards/{board_id}/apply", headers=user.headers)
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def rooms(self, user: Caller, **params: str) -> list[dict[str, Any]]:
        response = await self.client.get("/boards/rooms", params=params, headers=user.headers)
        assert response.status_code == 200, response.text
        return list(response.json()["items"])

    async def room(self, user: Caller, room_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/boards/rooms/{room_id}", headers=user.headers)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def board(self, user: Caller, board_id: int) -> dict[str, Any]:
        response = await self.client.get(f"/boards/{board_id}", headers=user.headers)
        assert response.status_code == 200, response.text
        return dict(response.json())


def make_settings(database_url: str, prefix: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": database_url,
        "redis_url": REDIS_URL,
        "redis_prefix": prefix,
        # The tests drive the relay by hand, and every session shares one connection.
        "outbox_relay_seconds": 0,
        **overrides,
    }
    return Settings(**values)


def bind_to(db: Database, connection: Any) -> Database:
    """``db`` with every session joining ``connection``'s transaction through a savepoint."""
    bound = copy.copy(db)
    bound.sessions = async_sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    return bound


async def read_events(redis: aioredis.Redis, prefix: str) -> list[Envelope]:
    """Every envelope on the boards stream of namespace ``prefix``, oldest first."""
    entries = await redis.xrange(prefix + BOARDS_STREAM) or []
    return [Envelope.from_json(fields["event"]) for _id, fields in entries if fields]


EventReader = Callable[[], Awaitable[list[Envelope]]]


@pytest.fixture(scope="session")
def signer() -> TestSigner:
    return TestSigner()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    with mariadb_database("boards") as url:
        service("boards").migrate(Settings(database_url=url))
        yield url


@pytest.fixture(scope="session")
async def engine_db(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    yield db
    await db.dispose()


@pytest.fixture
async def db(engine_db: Database) -> AsyncIterator[Database]:
    """Everything a test writes lives in one outer transaction, rolled back afterwards."""
    async with engine_db.engine.connect() as connection:
        outer = await connection.begin()
        try:
            yield bind_to(engine_db, connection)
        finally:
            await outer.rollback()


@pytest.fixture
def redis_shape() -> tuple[str, bool]:
    """``(url, cluster)`` of this test's Redis: one server, unless a module asks for each shape
    (``test_events.py`` runs on a Redis Cluster too)."""
    return REDIS_URL, False


@pytest.fixture
async def redis(redis_shape: tuple[str, bool]) -> AsyncIterator[aioredis.Redis]:
    client = create_redis(redis_shape[0], cluster=redis_shape[1])
    yield client
    await client.aclose()


@pytest.fixture
async def prefix(redis: aioredis.Redis) -> AsyncIterator[str]:
    """A Redis namespace of this test alone, deleted afterwards."""
    namespace = unique_prefix()
    yield namespace
    keys = [key async for key in redis.scan_iter(match=f"{namespace}*")]
    if keys:
        await redis.delete(*keys)


@pytest.fixture
def events(redis: aioredis.Redis, prefix: str) -> EventReader:
    """Reads this test's boards stream."""
    return lambda: read_events(redis, prefix)


@pytest.fixture
def settings(database_url: str, prefix: str, redis_shape: tuple[str, bool]) -> Settings:
    return make_settings(
        database_url, prefix, redis_url=redis_shape[0], redis_cluster=redis_shape[1]
    )


@pytest.fixture
def chat_messages() -> ChatMessages:
    return ChatMessages()


@pytest.fixture
async def app(
    settings: Settings, db: Database, signer: TestSigner, chat_messages: ChatMessages
) -> AsyncIterator[FastAPI]:
    app = create_app(settings, verifier=signer.verifier(), database=db)
    app.state.message_source = chat_messages  # instead of chat's history API
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://boards.test") as client:
        yield client


@pytest.fixture
def own_database_url() -> Iterator[str]:
    """A migrated database of this test alone."""
    with mariadb_database("boardsown") as url:
        service("boards").migrate(Settings(database_url=url))
        yield url


@pytest.fixture
async def pooled_client(
    own_database_url: str, signer: TestSigner, prefix: str
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app on a database of the test's own, with a real connection pool, so
    that concurrent requests run in concurrent transactions."""
    app = create_app(make_settings(own_database_url, prefix), verifier=signer.verifier())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://b") as client:
            yield client


@pytest.fixture
def api(client: httpx.AsyncClient) -> Api:
    return Api(client)


def _caller(signer: TestSigner, user_id: int, username: str) -> Caller:
    return Caller(user_id, username, signer.token(user_id, username))


@pytest.fixture
def caller(signer: TestSigner) -> Callable[[int, str], Caller]:
    """Makes a signed-in user."""
    return lambda user_id, username: _caller(signer, user_id, username)


@pytest.fixture
def alice(signer: TestSigner) -> Caller:
    return _caller(signer, 101, "alice")


@pytest.fixture
def bob(signer: TestSigner) -> Caller:
    return _caller(signer, 102, "bob")


@pytest.fixture
def carol(signer: TestSigner) -> Caller:
    return _caller(signer, 103, "carol")


@pytest.fixture
def dave(signer: TestSigner) -> Caller:
    return _caller(signer, 104, "dave")


@pytest.fixture
def olive(signer: TestSigner) -> Caller:
    """An operator (the ``role`` claim auth issues for accounts in DUOCHAT_OPERATORS)."""
    return Caller(105, "olive", signer.token(105, "olive", role="operator"))
