"""A cap on open streams per user, counted across every instance.

Each open stream holds a slot, a member of the user's sorted set scored by when it lapses. The
holding instance refreshes its slots while the stream is open, so an instance that dies without
releasing them frees them within ``stream_slot_ttl_seconds``.

A slot's member names its instance (``<instance>|<random>``): the live members of a user's slots
are also where pushers copy that user's entries (``delivery.py``).
"""

from __future__ import annotations

import time
import uuid

import redis.asyncio as aioredis

from duochat_notify.config import Settings
from duochat_notify.delivery import HOLDER_SEPARATOR
from duochat_notify.keys import Keys


class StreamSlots:
    def __init__(self, redis: aioredis.Redis, settings: Settings, *, instance: str) -> None:
        self.redis = redis
        self.settings = settings
        self.instance = instance
        self.keys = Keys(settings)
        self.held: dict[str, int] = {}

    def _key(self, user_id: int) -> str:
        return self.keys.slots(user_id)

    async def acquire(self, user_id: int) -> str | None:
        """A slot for one more stream of ``user_id``, or None when the user is at the cap."""
        slot = f"{self.instance}{HOLDER_SEPARATOR}{uuid.uuid4().hex}"
        key = self._key(user_id)
        ttl = self.settings.stream_slot_ttl_seconds
        now = time.time()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(key, "-inf", now)
            pipe.zadd(key, {slot: now + ttl})
            pipe.zcard(key)
            pipe.expire(key, ttl)
            _, _, count, _ = await pipe.execute()
        if int(count) > self.settings.max_streams_per_user:
            await self.redis.zrem(key, slot)
            return None
        self.held[slot] = user_id
        return slot

    async def release(self, slot: str) -> None:
        user_id = self.held.pop(slot, None)
        if user_id is not None:
            await self.redis.zrem(self._key(user_id), slot)

    async def refresh(self) -> None:
        """Push back the lapse time of every slot this instance holds."""
        if not self.held:
            return
        ttl = self.settings.stream_slot_ttl_seconds
        lapse = time.time() + ttl
        async with self.redis.pipeline(transaction=False) as pipe:
            for slot, user_id in list(self.held.items()):
                pipe.zadd(self._key(user_id), {slot: lapse}, xx=True)
                pipe.expire(self._key(user_id), ttl)
            await pipe.execute()
