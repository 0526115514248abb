"""From whichever instance made an alarm to the instance(s) holding that user's SSE streams.

Each user has a delivery stream, ``notify:user:{id}``: its entry ids are the SSE ids, so
``Last-Event-ID`` replay is an exact XRANGE. One Lua script per push, on keys of the user's hash
slot, does in one atomic step three things that a crash must not split:

1. the push marker of the alarm (SET NX; it holds the entry id), so a redelivered event appends
   nothing;
2. the append to the user's stream (XADD);
3. reading which instances hold a stream of this user (the live members of the user's slots).

Then the entry is copied to the inbox of each of those instances (``fanout.py`` reads its own). A
crash before the copies loses no live push: the event is redelivered, the script finds the marker
and returns the same entry id, and the copies go out again (a fan-out drops an id it already gave a
tab). A tab that opens during a push sees the entry either in its replay or in its inbox: it
registers its slot before it reads where the stream ends.

Two instances pushing to one user at once can have their copies land in an inbox in the other
order than on the user's stream. Each copy names the entry before it, and a fan-out that sees a copy
which does not follow the last one it delivered reads the gap from the user's stream instead.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis

from duochat_notify.config import Settings
from duochat_notify.keys import Keys
from duochat_notify.metrics import NotifyMetrics
from duochat_notify.models import Alarm
from duochat_notify.schemas import AlarmOut, ReadNotice

EVENT_FIELD = "event"
DATA_FIELD = "data"
# Fields an inbox entry adds: the user, the entry's id on the user's stream, and the id of the
# entry before it there ('' when unknown), so that a fan-out sees a copy that overtook another.
USER_FIELD = "user"
ID_FIELD = "id"
PREV_FIELD = "prev"
# A slot member is ``<instance>|<random>``.
HOLDER_SEPARATOR = "|"

# KEYS: the user's stream, the user's slots, the push marker (absent for a ``read`` notice).
# ARGV: now, stream maxlen, stream ttl, event, data.
# Returns {fresh, entry id, previous entry id ('' when not fresh), slot members...}.
PUSH_SCRIPT = """
local entry
if #KEYS > 2 then
  entry = redis.call('GET', KEYS[3])
end
local fresh = 0
local prev = ''
if not entry then
  local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
  prev = newest[1] and newest[1][1] or '0-0'
  entry = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*',
                     'event', ARGV[4], 'data', ARGV[5])
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  if #KEYS > 2 then
    redis.call('SET', KEYS[3], entry, 'EX', ARGV[3])
  end
  fresh = 1
end
local reply = redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[1], '+inf')
table.insert(reply, 1, prev)
table.insert(reply, 1, entry)
table.insert(reply, 1, fresh)
return reply
"""

Push = tuple[int, str, str, int | None]  # user, event, data, alarm id
# What a fresh append is counted with: its kind, and when what it tells of happened.
Counted = tuple[str, datetime | None]


class Delivery:
    """Appends SSE events to users' delivery streams and copies them to the holders' inboxes."""

    def __init__(
        self, redis: aioredis.Redis, settings: Settings, metrics: NotifyMetrics | None = None
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = Keys(settings)
        self.metrics = metrics

    def stream_key(self, user_id: int) -> str:
        return self.keys.user_stream(user_id)

    async def push_alarms(self, alarms: Sequence[Alarm]) -> int:
        """Append each alarm to its user's stream, at most once per alarm; returns how many
        were appended now (a redelivery appends none, but copies them to the inboxes again)."""
        return await self._push(
            [(a.user_id, a.kind, AlarmOut.of(a).to_json(), a.id) for a in alarms],
            [(a.kind, a.created_at) for a in alarms],
        )

    async def push_read(self, user_id: int, notice: ReadNotice) -> None:
        """Tell the user's open streams that alarms were read and what is left unread."""
        await self._push(
            [(user_id, "read", notice.model_dump_json(by_alias=True), None)], [("read", None)]
        )

    async def _push(self, pushes: Sequence[Push], counted: Sequence[Counted] = ()) -> int:
        """``counted``: each push's kind and time for the metrics (none: not counted)."""
        if not pushes:
            return 0
        now = time.time()
        maxlen = self.settings.user_stream_maxlen
        ttl = self.settings.user_stream_ttl_seconds
        async with self.redis.pipeline(transaction=False) as pipe:
            for user_id, event, data, alarm_id in pushes:
                keys = [self.keys.user_stream(user_id), self.keys.slots(user_id)]
                if alarm_id is not None:
                    keys.append(self.keys.pushed(user_id, alarm_id))
                pipe.eval(PUSH_SCRIPT, len(keys), *keys, now, maxlen, ttl, event, data)
            replies: list[Any] = await pipe.execute()
        fresh = 0
        copies: list[tuple[str, dict[Any, Any]]] = []
        for (user_id, event, data, _), reply in zip(pushes, replies, strict=True):
            fresh += int(reply[0])
            entry_id = str(reply[1])
            holders = {str(m).rpartition(HOLDER_SEPARATOR)[0] for m in reply[3:]}
            fields: dict[Any, Any] = {
                USER_FIELD: str(user_id),
                ID_FIELD: entry_id,
                PREV_FIELD: str(reply[2]),
                EVENT_FIELD: event,
                DATA_FIELD: data,
            }
            copies += [(self.keys.inbox(instance), fields) for instance in sorted(holders)]
        if copies:
            async with self.redis.pipeline(transaction=False) as pipe:
                for inbox, fields in copies:
                    pipe.xadd(inbox, fields, maxlen=self.settings.inbox_maxlen, approximate=True)
                await pipe.execute()
        # Counted once the copies are in the holders' inboxes: live on every open tab.
        if self.metrics is not None:
            for (kind, occurred), reply in zip(counted, replies, strict=False):
                if int(reply[0]):
                    self.metrics.pushed(kind, occurred)
        return fresh
