"""Per-user delivery streams in Redis: the path from whichever instance made an alarm to the
instance(s) holding that user's SSE streams.

Each user has one stream, ``notify:user:{id}``. An entry carries the SSE event name and its JSON
payload, and its entry id is the SSE ``id``, so ``Last-Event-ID`` replay is an exact XRANGE.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis

from duochat_notify.config import Settings
from duochat_notify.models import Alarm
from duochat_notify.schemas import AlarmOut, ReadNotice

EVENT_FIELD = "event"
DATA_FIELD = "data"


class Delivery:
    """Appends SSE events to users' delivery streams."""

    def __init__(self, redis: aioredis.Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings

    def stream_key(self, user_id: int) -> str:
        return self.settings.key(f"notify:user:{user_id}")

    def _pushed_key(self, alarm_id: int) -> str:
        return self.settings.key(f"notify:pushed:{alarm_id}")

    async def push_alarms(self, alarms: Sequence[Alarm]) -> int:
        """Append each alarm to its user's stream, at most once per alarm; returns how many.

        A redelivered event finds its alarms already stored; the SET NX gate keeps them from
        reaching the streams twice, and lets through those a crash kept from being pushed.
        """
        if not alarms:
            return 0
        ttl = self.settings.user_stream_ttl_seconds
        async with self.redis.pipeline(transaction=False) as pipe:
            for alarm in alarms:
                pipe.set(self._pushed_key(alarm.id), "1", nx=True, ex=ttl)
            gates = await pipe.execute()
        fresh = [alarm for alarm, won in zip(alarms, gates, strict=True) if won]
        if fresh:
            async with self.redis.pipeline(transaction=False) as pipe:
                for alarm in fresh:
                    self._append(pipe, alarm.user_id, alarm.kind, AlarmOut.of(alarm).to_json())
                await pipe.execute()
        return len(fresh)

    async def push_read(self, user_id: int, notice: ReadNotice) -> None:
        """Tell the user's open streams that alarms were read and what is left unread."""
        async with self.redis.pipeline(transaction=False) as pipe:
            self._append(pipe, user_id, "read", notice.model_dump_json(by_alias=True))
            await pipe.execute()

    def _append(self, pipe: aioredis.client.Pipeline, user_id: int, event: str, data: str) -> None:
        key = self.stream_key(user_id)
        pipe.xadd(
            key,
            {EVENT_FIELD: event, DATA_FIELD: data},
            maxlen=self.settings.user_stream_maxlen,
            approximate=True,
        )
        pipe.expire(key, self.settings.user_stream_ttl_seconds)
