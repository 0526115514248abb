"""Presence against the real Redis: a leave that crosses the periodic refresh stays a leave."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest

from duochat_chat.presence import Presence
from duochat_common.redis_store import create_redis


class HoldUpstream:
    """A loopback TCP proxy to Redis that, once armed, holds the first client packet holding
    ``marker`` (and what follows on that connection) until ``release()``: a command sent but
    not yet arrived, while other connections go on."""

    def __init__(self, target_port: int = 6379) -> None:
        self.target_port = target_port
        self.port = 0
        self.marker: bytes | None = None
        self.holding = asyncio.Event()
        self._released = asyncio.Event()
        self._released.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def arm(self, marker: bytes) -> None:
        self.marker = marker
        self._released.clear()

    def release(self) -> None:
        self.marker = None
        self._released.set()

    async def close(self) -> None:
        self.release()
        if self._server is not None:
            self._server.close()
        for task in self._tasks:
            task.cancel()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, hold: bool) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    if hold and self.marker is not None and self.marker in data:
                        self.holding.set()
                        await self._released.wait()
                    dst.write(data)
                    await dst.drain()
            dst.close()

        for task in (
            asyncio.create_task(pipe(reader, up_w, True)),
            asyncio.create_task(pipe(up_r, writer, False)),
        ):
            self._tasks.add(task)


@pytest.fixture
async def proxy() -> AsyncIterator[HoldUpstream]:
    held = HoldUpstream()
    await held.start()
    yield held
    await held.close()


async def test_a_leave_during_a_refresh_is_not_undone_by_it(proxy: HoldUpstream) -> None:
    prefix = f"t_presence_{uuid.uuid4().hex[:8]}:"
    redis = create_redis(f"redis://127.0.0.1:{proxy.port}/0")
    presence = Presence(redis, key=lambda k: prefix + k, instance="chat0", cache_s=0)
    try:
        assert await presence.join("room", 7, "angry")
        # The refresh has read the local entries and sent its ZADD, which has not arrived...
        proxy.arm(b"ZADD")
        refresh = asyncio.create_task(presence.refresh())
        await asyncio.wait_for(proxy.holding.wait(), 5)
        # ...when the user leaves.
        leave = asyncio.create_task(presence.leave("room", 7))
        await asyncio.sleep(0.3)
        proxy.release()
        await asyncio.wait_for(refresh, 5)
        assert await asyncio.wait_for(leave, 5) is True  # gone: the QUIT goes out
        assert await presence.members("room") == {}
        assert await redis.zrange(prefix + "chat:presence:room", 0, -1) == []
    finally:
        await redis.delete(prefix + "chat:presence:room")
        await redis.aclose()
