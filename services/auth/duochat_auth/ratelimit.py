"""Failed-login counters in Redis, per user name and per client address."""

from __future__ import annotations

import redis.asyncio as aioredis

from duochat_common.errors import TooManyRequests


class LoginLimiter:
    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        prefix: str,
        per_name: int,
        per_address: int,
        window_seconds: int,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.per_name = per_name
        self.per_address = per_address
        self.window = window_seconds

    def _keys(self, username: str, address: str) -> tuple[str, str]:
        return (
            f"{self.prefix}auth:loginfail:name:{username.lower()}",
            f"{self.prefix}auth:loginfail:addr:{address}",
        )

    async def check(self, *, username: str, address: str) -> None:
        """Raise ``TooManyRequests`` when either counter is at its limit."""
        name_key, addr_key = self._keys(username, address)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(name_key)
            pipe.get(addr_key)
            pipe.ttl(name_key)
            pipe.ttl(addr_key)
            by_name, by_addr, ttl_name, ttl_addr = await pipe.execute()
        if int(by_name or 0) >= self.per_name:
            raise TooManyRequests(
                "too many failed sign-ins for this account; try again later",
                retry_after=max(int(ttl_name), 1),
            )
        if int(by_addr or 0) >= self.per_address:
            raise TooManyRequests(
                "too many failed sign-ins from this address; try again later",
                retry_after=max(int(ttl_addr), 1),
            )

    async def failed(self, *, username: str, address: str) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in self._keys(username, address):
                pipe.incr(key)
                pipe.expire(key, self.window, nx=True)
            await pipe.execute()

    async def succeeded(self, *, username: str) -> None:
        await self.redis.delete(self._keys(username, "-")[0])
