"""Relaying chat's events from the outbox to the events stream.

The writer writes one outbox row per batch, in the same transaction as the messages, naming
them (``{"messages": {roomId: [first, last]}}``); ``mark_read`` writes its ``chat.room.read``
event whole (``{"events": [...]}``). After the commit the events, built in memory, go to Redis
through the outbound queue, and once they are there the row is deleted by the writer's next
batch, in its transaction (or here, after a second without batches). A row left behind (the
instance was killed after its commit, or Redis was away and the instance stopped) is picked up
by a sweep, on any instance, once it is ``stale_s`` old, and its events are rebuilt from the
stored messages. Presence at send time is gone by then, so a rebuilt event says so
(``presenceKnown: false``), and notify holds such an alarm briefly instead of raising it at once
(see notify's README). Events may reach Redis twice;
a message's event id is derived from the message, and consumers handle each id once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, delete, or_, select

from duochat_chat.drafts import Draft, message_sent_event
from duochat_chat.messages import iso, utcnow_ms
from duochat_chat.models import Message, OutboxBatch, Room
from duochat_chat.outbound import Append, Outbound
from duochat_chat.presence import Here
from duochat_chat.rooms import OwnedRoom
from duochat_common.db import Database
from duochat_common.events.bus import EVENTS_PER_ENTRY, cancel_requested, entry_fields

log = logging.getLogger(__name__)
EVENTS_MAXLEN = 200_000


class OutboxRelay:
    def __init__(
        self,
        db: Database,
        outbound: Outbound,
        *,
        stream: str,
        stale_s: float = 10.0,
        sweep_s: float = 5.0,
    ) -> None:
        self.db = db
        self.outbound = outbound
        self.stream = stream
        self.stale_s = stale_s
        self.sweep_s = sweep_s
        self._done: list[str] = []
        self._done_since = 0.0  # when the oldest id in _done was relayed (monotonic)
        self._in_flight: set[str] = set()

    def publish(self, outbox_id: str, events: list[str]) -> None:
        """Append a committed outbox row's events, up to ``EVENTS_PER_ENTRY`` to a stream entry
        (one XADD for a batch, not one per message); the row goes once they are in Redis."""
        chunks = [events[i : i + EVENTS_PER_ENTRY] for i in range(0, len(events), EVENTS_PER_ENTRY)]
        self._in_flight.add(outbox_id)
        last = len(chunks) - 1
        for i, chunk in enumerate(chunks):
            self.outbound.put(
                Append(
                    self.stream,
                    entry_fields(chunk),
                    maxlen=EVENTS_MAXLEN,
                    bulk=True,
                    on_done=(lambda: self._relayed(outbox_id)) if i == last else None,
                )
            )

    def _relayed(self, outbox_id: str) -> None:
        self._in_flight.discard(outbox_id)
        self._mark_done([outbox_id])

    def _mark_done(self, ids: list[str]) -> None:
        if not self._done:
            self._done_since = time.monotonic()
        self._done += ids

    def take_done(self, limit: int = 500) -> list[str]:
        """Rows whose events are in Redis, for the writer to delete in its next batch's
        transaction (no round trip of their own while messages flow)."""
        taken, self._done = self._done[:limit], self._done[limit:]
        return taken

    def give_back(self, ids: list[str]) -> None:
        """The batch that was to delete ``ids`` failed; they are deleted later."""
        if ids:
            self._mark_done(ids)

    async def delete_done(self) -> None:
        done, self._done = self._done, []
        for start in range(0, len(done), 500):
            async with self.db.engine.begin() as conn:
                await conn.execute(
                    delete(OutboxBatch).where(OutboxBatch.id.in_(done[start : start + 500]))
                )

    async def sweep(self) -> int:
        """Relay rows that their writer left behind; how many it found."""
        cutoff = utcnow_ms() - timedelta(seconds=self.stale_s)
        async with self.db.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(OutboxBatch.id, OutboxBatch.payload)
                    .where(OutboxBatch.created_at < cutoff)
                    .order_by(OutboxBatch.created_at)
                    .limit(200)
                )
            ).all()
        found = 0
        relayed = set(self._done)  # relayed, waiting for their deletion
        for row in rows:
            if row.id in self._in_flight or row.id in relayed:
                continue
            found += 1
            payload = json.loads(row.payload)
            events = list(payload.get("events", []))
            if payload.get("messages"):
                events += await self._rebuild(payload["messages"])
            if events:
                self.publish(row.id, events)
            else:
                self._mark_done([row.id])
        return found

    async def _rebuild(self, refs: dict[str, list[int]]) -> list[str]:
        """The chat.message.sent events of stored messages, as the writer built them."""
        ranges = [
            and_(Message.room_id == room_id, Message.id.between(first, last))
            for room_id, (first, last) in refs.items()
        ]
        async with self.db.engine.connect() as conn:
            rooms = {
                r.room_id: r
                for r in (await conn.execute(select(Room).where(Room.room_id.in_(list(refs)))))
            }
            rows = (await conn.execute(select(Message).where(or_(*ranges)))).all()
        events = []
        for row in rows:
            room: Any = rooms.get(row.room_id)
            if room is None:
                continue
            owned = OwnedRoom(
                room.room_id,
                room.writer_id,
                room.writer_name,
                room.applicant_id,
                room.applicant_name,
                room.status,
                row.id,
            )
            draft = Draft(row.room_id, row.type, row.sender_id, row.sender_name, row.message)
            events.append(
                message_sent_event(
                    draft,
                    owned,
                    row.id,
                    row.sender_name,
                    Here.empty(known=False),
                    iso(row.created_at),
                )
            )
        return events

    async def run(self, interval: float = 0.2, linger_s: float = 1.0) -> None:
        since_sweep = self.sweep_s  # sweep once at start: a restart picks up what it left
        while not cancel_requested():
            try:
                # Rows the writer has not taken within linger_s (no batches): delete them here.
                if self._done and time.monotonic() - self._done_since >= linger_s:
                    await self.delete_done()
                if since_sweep >= self.sweep_s:
                    since_sweep = 0.0
                    if await self.sweep():
                        log.info("outbox: relaying events left behind")
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("outbox relay step failed; retrying", exc_info=False)
            await asyncio.sleep(interval)
            since_sweep += interval
