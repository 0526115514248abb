"""Redis clients chosen by URL: ``redis://`` is a real server, ``memory://NAME`` an in-process
store (fakeredis) shared by every client with the same NAME, for the embedded mode and tests."""

from __future__ import annotations

import threading

import fakeredis
import redis.asyncio as aioredis

_servers: dict[str, fakeredis.FakeServer] = {}
_lock = threading.Lock()


def is_memory(url: str) -> bool:
    return url.startswith("memory://")


def _fake_server(name: str) -> fakeredis.FakeServer:
    with _lock:
        server = _servers.get(name)
        if server is None:
            server = _servers[name] = fakeredis.FakeServer()
        return server


def create_redis(url: str, *, max_connections: int = 256) -> aioredis.Redis:
    """An asyncio client that decodes replies to ``str``."""
    if is_memory(url):
        name = url.removeprefix("memory://") or "default"
        return fakeredis.FakeAsyncRedis(server=_fake_server(name), decode_responses=True)
    return aioredis.Redis.from_url(
        url,
        decode_responses=True,
        max_connections=max_connections,
        health_check_interval=15,
        socket_keepalive=True,
        retry_on_timeout=True,
    )
