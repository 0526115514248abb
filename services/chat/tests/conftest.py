"""Two real chat processes (uvicorn) against a fresh MariaDB database and the real Redis, with
auth and boards stood in for by a stub HTTP server."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.retry import Retry

from duochat_chat.config import Settings
from duochat_chat.ring import rendezvous
from duochat_common.events.schemas import UserRef
from duochat_common.services import service
from duochat_common.testing import REDIS_URL, TestSigner, mariadb_database, unique_prefix
from duochat_testing.chat import (
    ChatProcess,
    StompClient,
    Stub,
    StubRoom,
    chat_env,
    new_room,
    publish_rooms,
)

_user_ids = itertools.count(1000)
INSTANCES = ("chat0", "chat1")


@dataclass
class Cluster:
    signer: TestSigner
    stub: Stub
    database_url: str
    prefix: str
    redis: aioredis.Redis
    procs: list[ChatProcess]
    clients: list[StompClient] = field(default_factory=list)

    def user(self, name: str | None = None) -> tuple[UserRef, str]:
        uid = next(_user_ids)
        ref = UserRef(id=uid, username=name or f"user{uid}")
        return ref, self.signer.token(ref.id, ref.username)

    async def room(
        self,
        writer: UserRef,
        applicant: UserRef,
        *,
        announce: bool = True,
        owner: str | None = None,
        among: tuple[str, ...] = (),
    ) -> str:
        """A room boards knows (HTTP lookup) and, unless told not to, has announced; with
        ``owner``, one that this instance owns among ``among`` (default: the two)."""
        room = new_room(writer, applicant)
        while owner is not None and rendezvous(among or INSTANCES, room.room_id) != owner:
            room = new_room(writer, applicant)
        self.stub.rooms[room.room_id] = room
        if announce:
            await publish_rooms(self.redis, self.prefix, [room])
        return room.room_id

    def stub_room(self, room_id: str) -> StubRoom:
        return self.stub.rooms[room_id]

    async def client(self, proc: int, token: str | None, **kw: Any) -> StompClient:
        client = await StompClient.open(self.procs[proc].ws, token, **kw)
        self.clients.append(client)
        return client

    def settings(self) -> Settings:
        return Settings(database_url=self.database_url, redis_prefix=self.prefix)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    with mariadb_database("chat") as url:
        service("chat").migrate(Settings(database_url=url))
        yield url


@pytest.fixture(scope="session")
async def cluster(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Cluster]:
    signer = TestSigner()
    stub = Stub(signer)
    prefix = unique_prefix()
    logs = tmp_path_factory.mktemp("chat-logs")
    env = chat_env(
        database_url=database_url,
        redis_url=REDIS_URL,
        prefix=prefix,
        stub=stub,
        connect_timeout_s="2",
        max_subscriptions="20",
        sends_per_second="50",
        send_burst="100",
        max_sockets_per_user="6",
    )
    procs = [
        ChatProcess({**env, "DUOCHAT_INSTANCE_ID": f"chat{i}"}, log_path=logs / f"chat{i}.log")
        for i in range(2)
    ]
    # Retries: one test restarts Redis under this client.
    redis = aioredis.Redis.from_url(
        REDIS_URL,
        decode_responses=True,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 8),
        retry_on_error=[RedisConnectionError],
    )
    try:
        for proc in procs:
            proc.start()
        await asyncio.gather(*(p.wait_ready() for p in procs))
        yield Cluster(signer, stub, database_url, prefix, redis, procs)
    finally:
        for proc in procs:
            proc.stop()
        with contextlib.suppress(RedisError):
            keys = [k async for k in redis.scan_iter(match=f"{prefix}*", count=1000)]
            if keys:
                await redis.delete(*keys)
        await redis.aclose()
        stub.close()


@pytest.fixture
async def chat(cluster: Cluster) -> AsyncIterator[Cluster]:
    """The shared cluster; closes the clients a test opened."""
    yield cluster
    for client in cluster.clients:
        await client.close()
    cluster.clients.clear()
