"""The ``memory://`` backend answers the stream reads the services block on as Redis does.

Each test runs against the real Redis first, then the in-process store, with the same
assertions: an empty ``XREADGROUP``/``XREAD`` with ``COUNT`` and ``BLOCK`` waits out its block
without holding the event loop, and wakes as soon as another client appends.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from importlib.metadata import requires
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from duochat_common.redis_store import create_redis
from duochat_common.testing import REDIS_URL
from duochat_embedded.memory_redis import MemoryRedis

BLOCK_MS = 400


@pytest.fixture(params=["redis", "memory"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Redis, Redis]]:
    """Two clients of one store (a reader and a writer), real Redis then in-process."""
    url = REDIS_URL if request.param == "redis" else f"memory://blocking-{uuid.uuid4().hex}"
    reader, writer = create_redis(url), create_redis(url)
    yield reader, writer
    await reader.aclose()
    await writer.aclose()


@pytest.fixture
async def grouped(store: tuple[Redis, Redis]) -> AsyncIterator[tuple[Redis, Redis, str]]:
    """The reader, the writer and a stream with an empty group ``g``; the stream goes after."""
    reader, writer = store
    stream = f"t{uuid.uuid4().hex[:10]}:stream"
    await writer.xgroup_create(stream, "g", id="$", mkstream=True)
    yield reader, writer, stream
    await writer.delete(stream)


async def _ticks_while(work: asyncio.Future[Any]) -> int:
    """How often a 10 ms timer fired while ``work`` ran: a read that held the loop gives ~0."""
    ticks = 0
    while not work.done():
        await asyncio.sleep(0.01)
        ticks += 1
    return ticks


async def _woken_by_append(read: Awaitable[Any], writer: Redis, stream: str) -> tuple[Any, str]:
    """Start ``read``, see that it waits, append one entry from the other client: the reply,
    which must come at once, and the entry's id."""
    pending = asyncio.ensure_future(read)
    await asyncio.sleep(0.1)
    assert not pending.done()
    appended = time.monotonic()
    entry_id = str(await writer.xadd(stream, {"n": "1"}))
    reply = await asyncio.wait_for(pending, 2)
    assert time.monotonic() - appended < 0.2
    return reply, entry_id


async def test_an_empty_group_read_with_count_waits_out_its_block(
    grouped: tuple[Redis, Redis, str],
) -> None:
    reader, _, stream = grouped
    started = time.monotonic()
    read = asyncio.ensure_future(
        reader.xreadgroup("g", "c", {stream: ">"}, count=100, block=BLOCK_MS)
    )
    ticks = await _ticks_while(read)
    assert not read.result()
    assert time.monotonic() - started >= BLOCK_MS / 1000 * 0.9
    assert ticks >= 20  # the loop ran other tasks meanwhile


@pytest.mark.parametrize("block_ms", [BLOCK_MS * 5, 0])  # 0: no limit, as in Redis
async def test_a_blocked_group_read_wakes_on_another_clients_append(
    grouped: tuple[Redis, Redis, str], block_ms: int
) -> None:
    reader, writer, stream = grouped
    read = reader.xreadgroup("g", "c", {stream: ">"}, count=100, block=block_ms)
    reply, entry_id = await _woken_by_append(read, writer, stream)
    assert [[name, list(entries)] for name, entries in reply] == [
        [stream, [(entry_id, {"n": "1"})]]
    ]
    assert (await writer.xpending(stream, "g"))["pending"] == 1  # delivered, not acked


async def test_a_blocked_read_wakes_on_another_clients_append(
    grouped: tuple[Redis, Redis, str],
) -> None:
    reader, writer, stream = grouped
    await writer.xadd(stream, {"n": "0"})
    read = reader.xread({stream: "$"}, count=100, block=BLOCK_MS * 5)
    reply, _ = await _woken_by_append(read, writer, stream)
    assert [f["n"] for _, f in reply[0][1]] == ["1"]


async def test_a_group_read_takes_at_most_count_and_keeps_the_rest(
    grouped: tuple[Redis, Redis, str],
) -> None:
    reader, writer, stream = grouped
    for n in range(5):
        await writer.xadd(stream, {"n": str(n)})
    first: Any = await reader.xreadgroup("g", "c", {stream: ">"}, count=3, block=BLOCK_MS)
    second: Any = await reader.xreadgroup("g", "c", {stream: ">"}, count=3, block=BLOCK_MS)
    assert [f["n"] for _, f in first[0][1]] == ["0", "1", "2"]
    assert [f["n"] for _, f in second[0][1]] == ["3", "4"]


async def test_a_group_read_of_a_missing_group_fails_as_in_redis(
    grouped: tuple[Redis, Redis, str],
) -> None:
    reader, writer, stream = grouped
    await writer.xadd(stream, {"n": "0"})
    with pytest.raises(ResponseError, match=r"^NOGROUP"):
        await reader.xreadgroup("nobody", "c", {stream: ">"}, count=10, block=BLOCK_MS)


def test_memory_urls_reach_the_embedded_backend() -> None:
    assert isinstance(create_redis(f"memory://{uuid.uuid4().hex}"), MemoryRedis)


def _requirement_names(package: str) -> set[str]:
    """``package`` and everything it installs here, by installed metadata."""
    seen: set[str] = set()
    todo = [package]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for line in requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(requirement.name))
    return seen


SERVICE_PACKAGES = [
    "duochat-common",
    "duochat-auth",
    "duochat-boards",
    "duochat-chat",
    "duochat-notify",
]


@pytest.mark.parametrize("package", SERVICE_PACKAGES)
def test_no_service_package_needs_fakeredis(package: str) -> None:
    assert "fakeredis" not in _requirement_names(package)
    assert "fakeredis" in _requirement_names("duochat-embedded")
