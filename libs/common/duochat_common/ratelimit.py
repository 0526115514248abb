"""A fixed-window counter in Redis: at most ``limit`` events per key per window (auth's sign-ups
per address, boards' reports per user)."""

from __future__ import annotations

import redis.asyncio as aioredis

from duochat_common.errors import TooManyRequests


class WindowLimiter:
    """At most ``limit`` events per key in a fixed window; one key, one slot, on any Redis."""

    def __init__(
        self, redis: aioredis.Redis, *, prefix: str, name: str, limit: int, window_seconds: int
    ) -> None:
        self.redis = redis
        self.key_prefix = f"{prefix}{name}:"
        self.limit = limit
        self.window = window_seconds

    async def hit(self, key: str, *, message: str, code: str | None = None) -> None:
        """Count one event for ``key``; ``TooManyRequests`` once the window's limit is spent."""
        full = self.key_prefix + key
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.incr(full)
            pipe.expire(full, self.window, nx=True)
            pipe.ttl(full)
            count, _, ttl = await pipe.execute()
        if int(count) > self.limit:
            raise TooManyRequests(message, retry_after=max(int(ttl), 1), code=code)
