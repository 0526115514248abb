"""Shared fixtures: two notify processes on one fresh MariaDB database and a Redis namespace,
tokens from a TestSigner (its JWKS handed over in DUOCHAT_AUTH_JWKS_JSON), an SSE client."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from duochat_common.events import EventBus
from duochat_common.events.bus import entry_fields
from duochat_common.events.schemas import BOARDS_STREAM, CHAT_STREAM, EventData
from duochat_common.redis_store import create_redis
from duochat_common.services import service
from duochat_common.testing import (
    REDIS_SHAPES,
    TestSigner,
    mariadb_database,
    redis_shape_url,
    unique_prefix,
)
from duochat_notify.config import Settings

MAX_STREAMS = 3
KEEPALIVE = 1.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Instance:
    """A notify process started by the tests."""

    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)


def start_instance(name: str, env: dict[str, str], tmp: Path) -> Instance:
    port = free_port()
    log = tmp / f"{name}.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "duochat_notify.main:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
        ],
        env={**os.environ, **env, "DUOCHAT_INSTANCE_ID": name},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    return Instance(name, f"http://127.0.0.1:{port}", proc, log)


def wait_ready(instance: Instance, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if instance.proc.poll() is not None:
            raise RuntimeError(f"{instance.name} exited:\n{instance.log.read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(instance.url + "/readyz", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{instance.name} not ready:\n{instance.log.read_text()}")


@dataclass
class Cluster:
    """Notify instance A consumes the events; B only serves streams and REST, so whatever a
    stream on B gets was consumed by another process and crossed over through Redis."""

    a: Instance
    b: Instance
    # A third instance, started with the others (start-up is slow on a busy machine), for the
    # test that stops one.
    spare: Instance
    env: dict[str, str]
    settings: Settings
    signer: TestSigner
    bus: EventBus
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(random.randint(1, 10**9)))

    def user(self) -> tuple[int, str]:
        """A user id no other test uses, and its access token."""
        user_id = next(self._ids)
        return user_id, self.signer.token(user_id, f"user{user_id}")

    async def publish(self, event: EventData) -> str:
        """Publish an event the way boards and chat do; returns its envelope id."""
        stream = CHAT_STREAM if event.TYPE.startswith("chat.") else BOARDS_STREAM
        envelope = event.envelope()
        await self.bus.publish(self.settings.key(stream), envelope)
        return envelope.id

    async def publish_entry(self, events: list[EventData]) -> None:
        """Several chat events in one stream entry, the way chat's outbox relay appends a
        batch (``duochat_common.events.bus.entry_fields``)."""
        stream = self.settings.key(CHAT_STREAM)
        fields = entry_fields([event.envelope().to_json() for event in events])
        await self.bus.redis.xadd(stream, fields)  # type: ignore[arg-type]


@pytest.fixture(scope="package")
def signer() -> TestSigner:
    return TestSigner()


@pytest.fixture(scope="package")
def database_url() -> Iterator[str]:
    with mariadb_database("notify") as url:
        service("notify").migrate(Settings(database_url=url))
        yield url


@pytest.fixture(scope="package", params=REDIS_SHAPES)
def redis_shape(request: pytest.FixtureRequest) -> tuple[str, bool]:
    """``(url, cluster)``: the suite runs on one Redis, then on a Redis Cluster."""
    found = redis_shape_url(request.param)
    if found is None:
        pytest.skip("no Redis Cluster (start one with .ci/redis-cluster start)")
    return found


@pytest.fixture(scope="package")
def service_env(
    database_url: str, signer: TestSigner, redis_shape: tuple[str, bool]
) -> dict[str, str]:
    return {
        "DUOCHAT_ENVIRONMENT": "test",
        "DUOCHAT_DATABASE_URL": database_url,
        "DUOCHAT_REDIS_URL": redis_shape[0],
        "DUOCHAT_REDIS_CLUSTER": str(redis_shape[1]).lower(),
        "DUOCHAT_REDIS_PREFIX": unique_prefix(),
        "DUOCHAT_AUTH_JWKS_JSON": json.dumps(signer.jwks()),
        "DUOCHAT_KEEPALIVE_SECONDS": str(KEEPALIVE),
        "DUOCHAT_MAX_STREAMS_PER_USER": str(MAX_STREAMS),
        "DUOCHAT_CONSUMER_BLOCK_MS": "1000",
        "DUOCHAT_LOG_LEVEL": "WARNING",
    }


@pytest.fixture(scope="package")
async def cluster(
    service_env: dict[str, str], signer: TestSigner, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Cluster]:
    tmp = tmp_path_factory.mktemp("notify")
    a = start_instance("notify-a", service_env, tmp)
    b = start_instance("notify-b", {**service_env, "DUOCHAT_CONSUME_EVENTS": "false"}, tmp)
    spare = start_instance("notify-c", {**service_env, "DUOCHAT_CONSUME_EVENTS": "false"}, tmp)
    settings = Settings(
        redis_url=service_env["DUOCHAT_REDIS_URL"],
        redis_cluster=service_env["DUOCHAT_REDIS_CLUSTER"] == "true",
        redis_prefix=service_env["DUOCHAT_REDIS_PREFIX"],
        auth_jwks_json=service_env["DUOCHAT_AUTH_JWKS_JSON"],
    )
    redis = create_redis(settings.redis_url, cluster=settings.redis_cluster)
    try:
        for instance in (a, b, spare):
            wait_ready(instance)
        yield Cluster(a, b, spare, service_env, settings, signer, EventBus(redis))
    finally:
        for instance in (a, b, spare):
            instance.stop()
        keys = [k async for k in redis.scan_iter(match=settings.key("*"), count=1000)]
        for start in range(0, len(keys), 500):
            await redis.delete(*keys[start : start + 500])
        await redis.aclose()


@dataclass
class Event:
    id: str | None
    event: str
    data: Any


class SseStream:
    """A client of one SSE stream, reading it in the background into a queue."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self.comments: list[str] = []
        self.ended = asyncio.Event()
        self.error: BaseException | None = None
        self.last_id: str | None = None
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        fields: dict[str, str] = {}
        try:
            async for line in self.response.aiter_lines():
                if line == "":
                    if "data" in fields:
                        data = json.loads(fields["data"])
                        event = Event(fields.get("id"), fields.get("event", "message"), data)
                        self.last_id = event.id or self.last_id
                        self.events.put_nowait(event)
                    fields = {}
                elif line.startswith(":"):
                    self.comments.append(line[1:].strip())
                else:
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")
        except (httpx.HTTPError, asyncio.CancelledError) as exc:
            self.error = exc
        finally:
            self.ended.set()

    async def next(self, timeout: float = 10.0) -> Event:
        return await asyncio.wait_for(self.events.get(), timeout)

    async def take(self, count: int, timeout: float = 10.0) -> list[Event]:
        return [await self.next(timeout) for _ in range(count)]

    async def quiet(self, seconds: float = 0.5) -> None:
        """Assert that no event arrives for ``seconds``."""
        await asyncio.sleep(seconds)
        assert self.events.empty(), f"unexpected event {self.events.get_nowait()}"

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self.response.aclose()


@contextlib.asynccontextmanager
async def open_stream(
    base_url: str,
    token: str,
    *,
    last_event_id: str | None = None,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[SseStream]:
    """Take a ticket with ``token`` and open the stream; yields once the subscription is live."""
    async with httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(10, read=None)) as http:
        reply = await http.post("/notify/ticket", headers={"Authorization": f"Bearer {token}"})
        assert reply.status_code == 200, reply.text
        query = {"ticket": reply.json()["ticket"], **(params or {})}
        sent = dict(headers or {})
        if last_event_id:
            sent["Last-Event-ID"] = last_event_id
        request = http.build_request("GET", "/notify/stream", params=query, headers=sent)
        response = await http.send(request, stream=True)
        assert response.status_code == 200, (await response.aread()).decode()
        stream = SseStream(response)
        try:
            # The first comment comes once the tab is in place.
            for _ in range(500):
                if stream.comments or stream.ended.is_set():
                    break
                await asyncio.sleep(0.02)
            assert stream.comments, "stream never said it was connected"
            yield stream
        finally:
            await stream.close()


@pytest.fixture
def sse() -> Any:
    """``sse(base_url, token, last_event_id=None, params=None, headers=None)``: an open stream."""
    return open_stream


@contextlib.asynccontextmanager
async def in_process(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app in this process (lifespan included), for what needs no streaming."""
    from duochat_notify.main import create_app

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://notify") as http:
            yield http


@pytest.fixture
def app_client() -> Any:
    """``app_client(settings)``: an httpx client on an in-process app."""
    return in_process


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def wait_for_alarms(
    http: httpx.AsyncClient, token: str, count: int, timeout: float = 15.0
) -> dict[str, Any]:
    """Poll ``/notify/alarms`` until it lists ``count`` alarms (they are consumed async)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        page: dict[str, Any] = (
            await http.get("/notify/alarms", params={"limit": 100}, headers=bearer(token))
        ).json()
        if len(page["items"]) >= count or asyncio.get_running_loop().time() > deadline:
            return page
        await asyncio.sleep(0.05)


@pytest.fixture
def alarms_of() -> Any:
    """``await alarms_of(http, token, count)``: the alarm page once ``count`` alarms exist."""
    return wait_for_alarms
