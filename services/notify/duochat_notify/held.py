"""Live pushes that wait: ``message`` alarms for recipients whose presence chat could not read.

The rule (README, "Presence unknown"): such an alarm is stored at once, and pushed live only
after ``presence_hold_seconds`` and only if it is still unread then. A recipient who was in the
room on another chat instance reads the message there, chat's read mark reaches notify (on the
same stream, after the message) and marks the alarm read, so no alarm goes out; an absent
recipient gets it, late by the hold. The waiting pushes are a sorted set in Redis (alarm ids,
scored by when they are due), so any instance releases them, after a crash too; the push
markers keep a release by two instances at once from pushing twice.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

from duochat_common.db import Database
from duochat_notify import service
from duochat_notify.delivery import Delivery
from duochat_notify.models import Alarm


class HeldPushes:
    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        key: str,
        db: Database,
        delivery: Delivery,
        hold_seconds: float,
        batch: int = 500,
    ) -> None:
        self.redis = redis
        self.key = key
        self.db = db
        self.delivery = delivery
        self.hold_seconds = hold_seconds
        self.batch = batch

    async def hold(self, alarms: Sequence[Alarm]) -> None:
        """Push these alarms after the hold, if they are unread by then."""
        if alarms:
            due = time.time() + self.hold_seconds
            # NX: a redelivered event does not push the release further away.
            await self.redis.zadd(self.key, {str(a.id): due for a in alarms}, nx=True)

    async def release_due(self) -> int:
        """Push the unread alarms whose hold is over; returns how many were pushed."""
        pushed = 0
        while True:
            due: Any = await self.redis.zrangebyscore(
                self.key, "-inf", time.time(), start=0, num=self.batch
            )
            if not due:
                return pushed
            async with self.db.session() as session:
                unread = await service.unread_alarms(session=session, ids=[int(i) for i in due])
            pushed += await self.delivery.push_alarms(unread)
            await self.redis.zrem(self.key, *due)
            if len(due) < self.batch:
                return pushed
