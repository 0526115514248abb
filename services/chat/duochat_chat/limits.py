"""Limits per user across instances: how many sockets one user may hold, and how fast one user
may send, whichever instances their sockets are on.

Each user has one Redis hash (``chat:sockets:<userId>``): one field per instance, counting that
user's sockets there. A CONNECT adds one and reads the hash back in one round trip; fields of
instances that are no longer live do not count (an instance that died never decremented). The
send rate is a token bucket per user on each instance, shared by that user's sockets there, and
refilled at ``sends_per_second`` (and holding ``send_burst``) divided by the number of
instances that hold the user's sockets (as last read at a CONNECT), so the user's total stays
near the limit without a Redis call per SEND. While Redis cannot be read, the socket count is
not enforced (a CONNECT is not refused for an outage) and the rate counts this instance alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)
DAY_MS = 86_400_000


class TooManySockets(Exception):
    pass


class _Bucket:
    __slots__ = ("at", "burst", "rate", "sockets", "tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.at = time.monotonic()
        self.sockets = 0  # this user's sockets on this instance


class UserLimits:
    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        key: Callable[[str], str],
        instance: str,
        is_live: Callable[[str], bool],
        max_sockets: int,
        sends_per_second: float,
        send_burst: int,
    ) -> None:
        self.redis = redis
        self._key = key
        self.instance = instance
        self.is_live = is_live
        self.max_sockets = max_sockets
        self.sends_per_second = sends_per_second
        self.send_burst = send_burst
        self.buckets: dict[int, _Bucket] = {}

    def key(self, user_id: int) -> str:
        return self._key(f"chat:sockets:{user_id}")

    async def opened(self, user_id: int) -> None:
        """Count a new socket of ``user_id``; TooManySockets if that is one too many."""
        key = self.key(user_id)
        instances = 1
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hincrby(key, self.instance, 1)
                pipe.hgetall(key)
                pipe.pexpire(key, DAY_MS)
                _, counts, _ = await pipe.execute()
            live = {i: int(n) for i, n in counts.items() if self.is_live(i) and int(n) > 0}
            live[self.instance] = max(1, live.get(self.instance, 0))
            if sum(live.values()) > self.max_sockets:
                await self.redis.hincrby(key, self.instance, -1)
                raise TooManySockets(
                    f"too many connections: at most {self.max_sockets} per user; close one first"
                )
            instances = len(live)
            stale = [i for i in counts if not self.is_live(i)]
            if stale:
                await self.redis.hdel(key, *stale)
        except RedisError:
            log.warning("socket count not read (redis unavailable)")
        bucket = self.buckets.get(user_id)
        if bucket is None:
            bucket = self.buckets[user_id] = _Bucket(0.0, float(self.send_burst))
        bucket.sockets += 1
        bucket.rate = self.sends_per_second / instances
        bucket.burst = max(1.0, self.send_burst / instances)
        bucket.tokens = min(bucket.tokens, bucket.burst)

    async def closed(self, user_id: int) -> None:
        bucket = self.buckets.get(user_id)
        if bucket is not None:
            bucket.sockets -= 1
            if bucket.sockets <= 0:
                del self.buckets[user_id]
        try:
            await self.redis.hincrby(self.key(user_id), self.instance, -1)
        except RedisError:
            log.warning("socket count not updated (redis unavailable)")

    def may_send(self, user_id: int) -> bool:
        """Take one SEND from the user's bucket on this instance."""
        bucket = self.buckets.get(user_id)
        if bucket is None:
            return True
        now = time.monotonic()
        bucket.tokens = min(float(self.send_burst), bucket.tokens + (now - bucket.at) * bucket.rate)
        bucket.at = now
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True


class Throttle:
    """At most one event per key every so often, on this instance (typing signals)."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self.max_keys = max_keys
        self._last: dict[tuple[int, str], float] = {}

    def due(self, user_id: int, room_id: str, every_s: float) -> bool:
        now = time.monotonic()
        key = (user_id, room_id)
        if now - self._last.get(key, -every_s) < every_s:
            return False
        if len(self._last) >= self.max_keys:
            self._last.clear()
        self._last[key] = now
        return True
