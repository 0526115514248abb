"""Redis clients chosen by URL and settings.

- ``redis://`` (or ``rediss://``) is one real server;
- the same URL with ``cluster=True`` (``DUOCHAT_REDIS_CLUSTER=true``) is a Redis Cluster reached
  through any of its nodes, with redis-py's cluster client, which follows MOVED/ASK itself;
- ``memory://NAME`` is an in-process store shared by every client with the same NAME, for the
  embedded mode and tests. It behaves like Redis for every command the services use, so no
  production loop carries a workaround for it; it is a backend of the embedded package
  (``duochat_embedded.memory_redis``), found through the ``duochat.redis`` entry point, and a
  service image, which does not install that package, refuses the URL.

On a cluster every command must touch keys of one hash slot: keys used together share a
``{hash tag}`` (see ``hash_tag``), and non-transactional pipelines are split by node.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from importlib.metadata import entry_points
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster


def is_memory(url: str) -> bool:
    return url.startswith("memory://")


def is_cluster(client: object) -> bool:
    """True for a Redis Cluster client."""
    return isinstance(client, RedisCluster)


def hash_tag(name: str) -> str:
    """``name`` as a hash tag, so that every key built on it lands in one cluster slot."""
    return "{" + name.replace("{", "(").replace("}", ")") + "}"


class ExpiryRenewals:
    """When each key written often last had its expiry set: such a key needs it only once in a
    while, not with every write (an expiry command with each write of a small batch doubles its
    commands), but again now and then, since a Redis that restarted empty gets the key back
    with none."""

    def __init__(self, every_s: float = 60.0, max_keys: int = 10_000) -> None:
        self.every_s = every_s
        self.max_keys = max_keys
        self._at: dict[str, float] = {}

    def due(self, key: str) -> bool:
        """Whether the write of ``key`` about to be sent should set its expiry too; a True is
        counted as done (a write that fails is retried, and the key's next renewal comes
        ``every_s`` later at the latest)."""
        now = time.monotonic()
        at = self._at.get(key)
        if at is not None and now - at < self.every_s:
            return False
        if len(self._at) >= self.max_keys:
            self._at.clear()
        self._at[key] = now
        return True

    def forget(self, keys: Iterable[str] | None = None) -> None:
        """The expiry of ``keys`` (of every key: None) is due again at their next write (the
        write that was to set it failed)."""
        if keys is None:
            self._at.clear()
        else:
            for key in keys:
                self._at.pop(key, None)


class NoMemoryBackend(RuntimeError):
    """``memory://`` asked of an installation without the embedded package."""


def _memory_client(url: str) -> aioredis.Redis:
    found = entry_points(group="duochat.redis", name="memory")
    if not found:
        raise NoMemoryBackend(
            f"{url}: the in-process store comes with the duochat-embedded package, which is not "
            "installed here; give a redis:// URL"
        )
    create = next(iter(found)).load()
    return cast(aioredis.Redis, create(url))


def create_redis(url: str, *, max_connections: int = 256, cluster: bool = False) -> aioredis.Redis:
    """An asyncio client that decodes replies to ``str``.

    With ``cluster`` the URL names any node of a Redis Cluster and ``max_connections`` is per
    node. The cluster client offers the same command methods as ``Redis`` (the type says
    ``Redis`` so that callers stay one shape); only cross-slot commands differ, and none of
    ours are.
    """
    if is_memory(url):
        return _memory_client(url)
    options: dict[str, Any] = {
        "decode_responses": True,
        "max_connections": max_connections,
        "health_check_interval": 15,
        "socket_keepalive": True,
    }
    if cluster:
        return cast(aioredis.Redis, RedisCluster.from_url(url, **options))
    return aioredis.Redis.from_url(url, retry_on_timeout=True, **options)


async def ping(client: aioredis.Redis) -> None:
    """A readiness check: one server answers, or on a cluster, every slot is served."""
    if is_cluster(client):
        info: Any = await client.execute_command("CLUSTER INFO")
        state = info.get("cluster_state") if isinstance(info, dict) else str(info)
        if state != "ok":
            raise ConnectionError(f"redis cluster state is {state!r}")
        return
    await client.ping()
