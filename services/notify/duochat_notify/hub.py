"""Each instance's fan-out from users' delivery streams to the SSE streams it holds.

One task per instance reads, with one blocking XREAD, the delivery stream of every user who has
a stream open here, and hands each entry to that user's subscriptions (one per tab). An entry
reaches a subscription only if its id is above the last id that subscription has seen, so a tab
that joins while the reader is ahead, or behind, gets every entry once and in order.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from duochat_notify.delivery import DATA_FIELD, EVENT_FIELD

log = logging.getLogger(__name__)

StreamId = tuple[int, int]
ZERO: StreamId = (0, 0)


def parse_id(value: str | None) -> StreamId | None:
    """A Redis stream entry id (``ms-seq``) as a comparable pair, or None if malformed."""
    if not value or len(value) > 41:
        return None
    ms, sep, seq = value.strip().partition("-")
    if not sep or not ms.isdigit() or not seq.isdigit():
        return None
    return int(ms), int(seq)


def format_id(value: StreamId) -> str:
    return f"{value[0]}-{value[1]}"


@dataclass(frozen=True, slots=True)
class Entry:
    id: str
    event: str
    data: str


class Subscription:
    """One open SSE stream: a queue of entries, closed by the hub, an overflow or shutdown."""

    def __init__(self, user_id: int, last: StreamId, *, max_queued: int) -> None:
        self.user_id = user_id
        self.last = last
        self.closed = False
        self._max = max_queued
        self._queue: asyncio.Queue[Entry | None] = asyncio.Queue()

    def offer(self, entry_id: str, parsed: StreamId, fields: dict[str, Any]) -> None:
        if self.closed or parsed <= self.last:
            return
        self.last = parsed
        if self._queue.qsize() >= self._max:
            # A client this far behind reconnects with Last-Event-ID and replays from Redis.
            log.warning("stream closed: client too slow", extra={"fields": {"user": self.user_id}})
            self.close()
            return
        event = str(fields.get(EVENT_FIELD, "message"))
        self._queue.put_nowait(Entry(entry_id, event, str(fields.get(DATA_FIELD, "{}"))))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._queue.put_nowait(None)

    async def next(self) -> Entry | None:
        """The next entry, or None once closed."""
        return await self._queue.get()


class Hub:
    """Reads the delivery streams of the users connected to this instance."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        key_of: Callable[[int], str],
        wake_key: str,
        block_ms: int = 5000,
        max_queued: int = 1000,
    ) -> None:
        self.redis = redis
        self.key_of = key_of
        # Registering a user the blocked XREAD does not cover appends to this instance's own
        # wake stream, which that XREAD also reads, so it returns and picks the user up at once.
        self.wake_key = f"{wake_key}:{uuid.uuid4().hex[:12]}"
        self.block_ms = block_ms
        self.max_queued = max_queued
        self._subs: dict[int, set[Subscription]] = {}
        self._cursors: dict[int, StreamId] = {}
        self._wake_cursor = "0-0"
        self._closing = False

    @property
    def connected(self) -> int:
        return sum(len(subs) for subs in self._subs.values())

    async def subscribe(self, user_id: int, last_event_id: str | None) -> Subscription:
        """A subscription that starts after ``last_event_id``, or after the newest entry."""
        key = self.key_of(user_id)
        newest_entry: Any = await self.redis.xrevrange(key, "+", "-", count=1)
        newest = (parse_id(newest_entry[0][0]) if newest_entry else None) or ZERO
        resume = parse_id(last_event_id)
        # An id past the newest entry (a client's bug) would hold the reader back for every tab
        # of this user until the clock caught up, so it counts as "from now".
        start = newest if resume is None else min(resume, newest)
        sub = Subscription(user_id, start, max_queued=self.max_queued)
        while True:
            cursor = self._cursors.get(user_id)
            if cursor is None:
                self._cursors[user_id] = sub.last
                self._subs[user_id] = {sub}
                await self._wake()
                return sub
            if cursor <= sub.last:
                self._subs[user_id].add(sub)
                return sub
            # The reader is past where this tab starts: fetch what it already handed out.
            batch = 500
            entries: Any = await self.redis.xrange(
                key, min=f"({format_id(sub.last)}", max=format_id(cursor), count=batch
            )
            for entry_id, fields in entries:
                parsed = parse_id(entry_id)
                if parsed is not None:
                    sub.offer(entry_id, parsed, fields)
            if len(entries) < batch:
                sub.last = max(sub.last, cursor)

    def unsubscribe(self, sub: Subscription) -> None:
        sub.close()
        subs = self._subs.get(sub.user_id)
        if subs is None:
            return
        subs.discard(sub)
        if not subs:
            del self._subs[sub.user_id]
            del self._cursors[sub.user_id]

    def close_all(self) -> None:
        """Close every stream (server shutdown): clients reconnect elsewhere and replay."""
        self._closing = True
        for subs in list(self._subs.values()):
            for sub in list(subs):
                sub.close()

    async def _wake(self) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xadd(self.wake_key, {"w": "1"}, maxlen=50, approximate=True)
            pipe.expire(self.wake_key, 3600)
            await pipe.execute()

    def _dispatch(self, user_id: int, entries: list[tuple[str, dict[str, Any]]]) -> None:
        cursor = self._cursors.get(user_id)
        if cursor is None:  # every tab of this user left while XREAD was out
            return
        subs = list(self._subs.get(user_id, ()))
        for entry_id, fields in entries:
            parsed = parse_id(entry_id)
            if parsed is None:
                continue
            cursor = max(cursor, parsed)
            for sub in subs:
                sub.offer(entry_id, parsed, fields)
        self._cursors[user_id] = cursor

    async def read_once(self) -> int:
        """One blocking XREAD over every connected user's stream; returns entries read."""
        users = {self.key_of(uid): uid for uid in self._cursors}
        streams: dict[Any, Any] = {self.wake_key: self._wake_cursor}
        streams.update({key: format_id(self._cursors[uid]) for key, uid in users.items()})
        reply: Any = await self.redis.xread(streams, count=200, block=self.block_ms)
        seen = 0
        for key, entries in reply or []:
            seen += len(entries)
            if not entries:
                continue
            if key == self.wake_key:
                self._wake_cursor = entries[-1][0]
                continue
            user_id = users.get(key)
            if user_id is not None:
                self._dispatch(user_id, entries)
        return seen

    async def run(self) -> None:
        """Read until cancelled; survives Redis outages."""
        backoff = 0.1
        while not self._closing:
            started = time.monotonic()
            try:
                seen = await self.read_once()
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("delivery read failed, retrying", exc_info=True)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            # Guard against a store that answers an empty blocking read at once.
            if not seen and time.monotonic() - started < self.block_ms / 4000:
                await asyncio.sleep(0.05)
