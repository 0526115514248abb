"""Sign-in and sign-up limits in Redis.

Failed sign-ins count per account (the account the name found, else the canonical name tried, so
``HappyDaddy`` and ``happydaddy `` are one counter) and per client address. An account is never
locked: after ``free_failures`` each further failure makes the next attempt wait twice as long as
the last, up to ``max_delay`` seconds, so a guesser gets a handful of tries an hour while the owner
waits at most ``max_delay``. The address counter is a plain window, and so is registration.
"""

from __future__ import annotations

import math
import time

import redis.asyncio as aioredis

from duochat_common.errors import TooManyRequests
from duochat_common.ratelimit import WindowLimiter

__all__ = ["LoginLimiter", "WindowLimiter"]


class LoginLimiter:
    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        prefix: str,
        free_failures: int,
        per_address: int,
        window_seconds: int,
        base_delay: float = 1.0,
        max_delay: float = 60.0,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.free_failures = free_failures
        self.per_address = per_address
        self.window = window_seconds
        self.base_delay = base_delay
        self.max_delay = max_delay

    def _account_key(self, account: str) -> str:
        return f"{self.prefix}auth:loginfail:acct:{account}"

    def _address_key(self, address: str) -> str:
        return f"{self.prefix}auth:loginfail:addr:{address}"

    def delay_after(self, failures: int) -> float:
        """Seconds the next attempt waits after ``failures`` consecutive failures."""
        over = failures - self.free_failures
        if over < 0:
            return 0.0
        return min(self.base_delay * 2 ** min(over, 32), self.max_delay)

    async def check(self, *, account: str, address: str) -> None:
        """Raise ``TooManyRequests`` while the account's delay runs or the address is spent."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(self._account_key(account), "until")
            pipe.get(self._address_key(address))
            pipe.ttl(self._address_key(address))
            until, by_addr, ttl_addr = await pipe.execute()
        wait = float(until or 0) - time.time()
        if wait > 0:
            raise TooManyRequests(
                "too many failed sign-ins for this account; wait a moment and try again",
                retry_after=max(math.ceil(wait), 1),
            )
        if int(by_addr or 0) >= self.per_address:
            raise TooManyRequests(
                "too many failed sign-ins from this address; try again later",
                retry_after=max(int(ttl_addr), 1),
            )

    async def failed(self, *, account: str, address: str) -> None:
        key = self._account_key(account)
        failures = int(await self.redis.hincrby(key, "count", 1))
        async with self.redis.pipeline(transaction=False) as pipe:
            delay = self.delay_after(failures)
            if delay:
                pipe.hset(key, "until", repr(time.time() + delay))
            pipe.expire(key, self.window)
            pipe.incr(self._address_key(address))
            pipe.expire(self._address_key(address), self.window, nx=True)
            await pipe.execute()

    async def succeeded(self, *, account: str) -> None:
        await self.redis.delete(self._account_key(account))
