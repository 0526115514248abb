"""Each instance's fan-out from its inbox to the SSE streams it holds.

An instance reads one stream, its own inbox, with one blocking XREAD, whatever the number of
users connected to it; pushers copy into it the entries of the users it holds (``delivery.py``).
So a read costs the same for 10 users or 10,000, and an entry costs one copy per instance that
holds a tab of its user. Users' own streams stay the record for ``Last-Event-ID`` replay.

A new tab registers here before it reads where its user's stream ends, and replays up to there
from the stream; what the inbox brings meanwhile waits in the tab and is offered after the
replay. An entry reaches a tab only if its id is above the last id that tab has seen, so every
entry arrives once and in order; a copy that overtook another one (two pushers at once) makes
the fan-out read the gap from the user's stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from duochat_notify.delivery import DATA_FIELD, EVENT_FIELD, ID_FIELD, PREV_FIELD, USER_FIELD

log = logging.getLogger(__name__)

StreamId = tuple[int, int]
ZERO: StreamId = (0, 0)
Fields = dict[str, Any]
# How often a fan-out pushes back the expiry of its inbox, and that expiry.
INBOX_TTL_SECONDS = 3600
INBOX_REFRESH_SECONDS = 300.0


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
class SseEvent:
    id: str
    event: str
    data: str


class Tab:
    """One open SSE stream: a queue of entries, closed by the fan-out, an overflow or shutdown."""

    def __init__(self, user_id: int, last: StreamId, *, max_queued: int) -> None:
        self.user_id = user_id
        self.last = last
        self.closed = False
        self._max = max_queued
        self._queue: asyncio.Queue[SseEvent | None] = asyncio.Queue()
        # While the tab replays, what the inbox brings waits here.
        self._early: list[tuple[StreamId, str, Fields]] | None = []

    def offer(self, entry_id: str, parsed: StreamId, fields: Fields) -> bool:
        """Queue the entry unless already passed. False when it is an inbox copy that does not
        follow the last entry (another copy is late or lost): the caller fills the gap from the
        user's stream, whose entries carry no ``prev``."""
        if self._early is not None:
            self._early.append((parsed, entry_id, fields))
            return True
        if self.closed or parsed <= self.last:
            return True
        prev = fields.get(PREV_FIELD)
        if prev is not None and parse_id(prev) != self.last:
            return False
        self.last = parsed
        if self._queue.qsize() >= self._max:
            # A client this far behind reconnects with Last-Event-ID and replays from Redis.
            log.warning("stream closed: client too slow", extra={"fields": {"user": self.user_id}})
            self.close()
            return True
        event = str(fields.get(EVENT_FIELD, "message"))
        self._queue.put_nowait(SseEvent(entry_id, event, str(fields.get(DATA_FIELD, "{}"))))
        return True

    def go_live(self, replay: list[tuple[str, Fields]]) -> bool:
        """Hand out the replay, then what arrived during it; False if that left a gap."""
        early, self._early = self._early or [], None
        follows = True
        for entry_id, fields in replay:
            parsed = parse_id(entry_id)
            if parsed is not None:
                follows = self.offer(entry_id, parsed, fields) and follows
        for parsed, entry_id, fields in sorted(early, key=lambda item: item[0]):
            follows = self.offer(entry_id, parsed, fields) and follows
        return follows

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._queue.put_nowait(None)

    async def next(self) -> SseEvent | None:
        """The next entry, or None once closed."""
        return await self._queue.get()


class Fanout:
    """Reads this instance's inbox and hands each entry to its user's tabs here."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        inbox_key: str,
        key_of: Callable[[int], str],
        block_ms: int = 5000,
        max_queued: int = 1000,
        replay_batch: int = 500,
    ) -> None:
        self.redis = redis
        self.inbox_key = inbox_key
        self.key_of = key_of
        self.block_ms = block_ms
        self.max_queued = max_queued
        self.replay_batch = replay_batch
        self._subs: dict[int, set[Tab]] = {}
        self._cursor: str | None = None
        self._expiry_due = 0.0
        self._closing = False

    @property
    def connected(self) -> int:
        return sum(len(subs) for subs in self._subs.values())

    async def subscribe(self, user_id: int, last_event_id: str | None) -> Tab:
        """A tab that starts after ``last_event_id``, or after the newest entry.

        The caller has registered the user's slot on this instance first (``StreamSlots``),
        so that pushes from then on are copied to this inbox.
        """
        if self._cursor is None:
            # Where the inbox stands before the first tab: a push from then on reaches it.
            self._cursor = await self._start_cursor()
        sub = Tab(user_id, ZERO, max_queued=self.max_queued)
        self._subs.setdefault(user_id, set()).add(sub)
        try:
            key = self.key_of(user_id)
            newest_entry: Any = await self.redis.xrevrange(key, "+", "-", count=1)
            newest = (parse_id(newest_entry[0][0]) if newest_entry else None) or ZERO
            resume = parse_id(last_event_id)
            # An id past the newest entry (a client's bug) counts as "from now".
            sub.last = newest if resume is None else min(resume, newest)
            replay: list[tuple[str, Fields]] = []
            start = sub.last
            while start < newest:
                entries: Any = await self.redis.xrange(
                    key, min=f"({format_id(start)}", max=format_id(newest), count=self.replay_batch
                )
                replay += entries
                if len(entries) < self.replay_batch:
                    break
                start = parse_id(entries[-1][0]) or newest
            if not sub.go_live(replay):
                await self._fill(sub)
        except BaseException:
            self.unsubscribe(sub)
            raise
        return sub

    def unsubscribe(self, sub: Tab) -> None:
        sub.close()
        subs = self._subs.get(sub.user_id)
        if subs is None:
            return
        subs.discard(sub)
        if not subs:
            del self._subs[sub.user_id]

    def close_all(self) -> None:
        """Close every stream (server shutdown): clients reconnect elsewhere and replay."""
        self._closing = True
        for subs in list(self._subs.values()):
            for sub in list(subs):
                sub.close()

    async def _fill(self, sub: Tab) -> None:
        """Deliver, from the user's stream, every entry after the tab's last one."""
        start = sub.last
        while True:
            entries: Any = await self.redis.xrange(
                self.key_of(sub.user_id), min=f"({format_id(start)}", count=self.replay_batch
            )
            for entry_id, fields in entries:
                parsed = parse_id(entry_id)
                if parsed is not None:
                    sub.offer(entry_id, parsed, fields)
                    start = max(start, parsed)
            if len(entries) < self.replay_batch:
                return

    async def _fill_gaps(self, gaps: set[Tab]) -> None:
        for sub in gaps:
            try:
                await self._fill(sub)
            except asyncio.CancelledError:
                raise
            except Exception:
                # The tab reconnects with Last-Event-ID and replays: nothing is lost.
                log.warning("closing a stream whose gap could not be read", exc_info=True)
                sub.close()

    async def _start_cursor(self) -> str:
        newest: Any = await self.redis.xrevrange(self.inbox_key, "+", "-", count=1)
        return str(newest[0][0]) if newest else "0-0"

    def _dispatch(self, entry_id: str, fields: Fields, gaps: set[Tab]) -> None:
        try:
            user_id = int(fields.get(USER_FIELD, ""))
        except ValueError:
            return
        subs = self._subs.get(user_id)
        if not subs:  # every tab of this user left since the copy was made
            return
        stream_id = str(fields.get(ID_FIELD, ""))
        parsed = parse_id(stream_id)
        if parsed is None:
            return
        for sub in list(subs):
            if not sub.offer(stream_id, parsed, fields):
                gaps.add(sub)

    async def read_once(self) -> int:
        """One blocking XREAD on the inbox; returns entries read."""
        if self._cursor is None:
            self._cursor = await self._start_cursor()
        if time.monotonic() >= self._expiry_due:
            await self.redis.expire(self.inbox_key, INBOX_TTL_SECONDS)
            self._expiry_due = time.monotonic() + INBOX_REFRESH_SECONDS
        reply: Any = await self.redis.xread(
            {self.inbox_key: self._cursor}, count=500, block=self.block_ms
        )
        seen = 0
        gaps: set[Tab] = set()
        for _key, entries in reply or []:
            for entry_id, fields in entries:
                seen += 1
                self._cursor = entry_id
                if fields:
                    self._dispatch(entry_id, fields, gaps)
        if gaps:
            await self._fill_gaps(gaps)
        return seen

    async def run(self) -> None:
        """Read until cancelled; survives Redis outages."""
        backoff = 0.1
        while not self._closing:
            try:
                await self.read_once()
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("delivery read failed, retrying", exc_info=True)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
