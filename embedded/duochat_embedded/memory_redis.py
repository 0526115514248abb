"""The ``memory://NAME`` Redis backend: an in-process store that behaves like Redis.

Every client made for the same NAME shares one fakeredis server, so the four services of the
embedded mode (and a test's several instances) see the same keys, streams and groups. The
services keep calling redis-py's API; this adapter is the one place that makes fakeredis answer
as Redis does where it does not:

- ``XREADGROUP`` with both ``COUNT`` and ``BLOCK`` on a stream with nothing new answers at once
  (fakeredis only blocks without ``COUNT``). Here it blocks until an entry arrives past the
  group's last delivered id or ``BLOCK`` runs out, as Redis does.

``duochat_common.redis_store.create_redis`` finds ``create`` through the ``duochat.redis``
entry point of this package, so fakeredis is a dependency of the embedded package alone and the
service images, which do not install it, refuse ``memory://``.
"""

from __future__ import annotations

import threading
import time
from typing import Any, cast

import fakeredis
from redis.asyncio import Redis

_servers: dict[str, fakeredis.FakeServer] = {}
_lock = threading.Lock()


def _server(name: str) -> fakeredis.FakeServer:
    with _lock:
        server = _servers.get(name)
        if server is None:
            server = _servers[name] = fakeredis.FakeServer()
        return server


class MemoryRedis(fakeredis.FakeAsyncRedis):
    """fakeredis's asyncio client, with Redis's blocking ``XREADGROUP``."""

    async def xreadgroup(  # type: ignore[override]
        self,
        groupname: str,
        consumername: str,
        streams: dict[Any, Any],
        count: int | None = None,
        block: int | None = None,
        noack: bool = False,
        **options: Any,
    ) -> Any:
        def read(wait: int | None) -> Any:
            return super(MemoryRedis, self).xreadgroup(
                groupname, consumername, streams, count, wait, noack, **options
            )

        # Without COUNT fakeredis blocks itself; a read of the pending history never blocks.
        if block is None or not count or any(start != ">" for start in streams.values()):
            return await read(block)
        deadline = None if block == 0 else time.monotonic() + block / 1000
        while True:
            reply = await read(None)
            left_ms = 0 if deadline is None else int((deadline - time.monotonic()) * 1000)
            if reply or (deadline is not None and left_ms <= 0):
                return reply
            await self._wait_past_group(groupname, list(streams), left_ms)

    async def _wait_past_group(self, group: str, streams: list[Any], block_ms: int) -> None:
        """Return once one of ``streams`` holds an entry after ``group``'s last delivered id, or
        after ``block_ms`` (0: no limit); the entry stays for the group to read."""
        after: dict[Any, Any] = {}
        for stream in streams:
            groups: Any = await self.xinfo_groups(stream)
            delivered = [g["last-delivered-id"] for g in groups if g["name"] == group]
            if not delivered:
                return  # the group is gone: the next read says NOGROUP, as Redis would
            after[stream] = delivered[0]
        await self.xread(after, count=1, block=block_ms)


def create(url: str) -> Redis:
    """A client of the in-process store named by ``memory://NAME``, decoding replies to ``str``."""
    name = url.removeprefix("memory://") or "default"
    return cast(Redis, MemoryRedis(server=_server(name), decode_responses=True))
