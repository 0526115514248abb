"""The transactional outbox: an event is a row written in the transaction of the change it
describes, and reaches Redis after the commit.

A request stages its events, commits, then publishes exactly those rows and marks them
published. If that publish fails (Redis down, or the process dies between commit and publish),
the rows stay unpublished and the relay publishes them on a later sweep, so no committed change
loses its event. Delivery is at least once: a row whose publish worked but whose mark did not
land is published again with the same envelope id, which consumers skip as already handled.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from duochat_boards.models import OutboxEvent, utcnow
from duochat_common.db import Database
from duochat_common.events import Envelope, EventBus
from duochat_common.events.schemas import EventData

log = logging.getLogger(__name__)


class Outbox:
    """Stages events in a transaction and publishes them after it commits."""

    def __init__(
        self,
        *,
        db: Database,
        bus: EventBus,
        stream_key: Callable[[str], str],
        grace_seconds: float = 5.0,
        retention_seconds: float = 7 * 86400,
        publish_timeout: float = 5.0,
        batch: int = 100,
    ) -> None:
        self.db = db
        self.bus = bus
        self.stream_key = stream_key
        self.grace_seconds = grace_seconds
        self.retention_seconds = retention_seconds
        self.publish_timeout = publish_timeout
        self.batch = batch
        self._relay_lock = asyncio.Lock()

    @staticmethod
    def stage(session: AsyncSession, stream: str, event: EventData) -> OutboxEvent:
        """Write ``event`` in the session's transaction; ``deliver`` publishes it after commit."""
        row = OutboxEvent(stream=stream, payload=event.envelope().to_json(), created_at=utcnow())
        session.add(row)
        return row

    async def commit(self, session: AsyncSession, stream: str, *events: EventData) -> None:
        """Stage ``events``, commit the session's transaction, then publish them."""
        rows = [self.stage(session, stream, event) for event in events]
        await session.commit()
        await self.deliver(rows)

    async def deliver(self, rows: Sequence[OutboxEvent]) -> None:
        """Publish committed rows now; on failure leave them to the relay (never raises)."""
        if not rows:
            return
        try:
            # A session of its own: the caller's objects stay loaded whatever happens here.
            async with self.db.session() as session:
                await self._publish(session, rows)
        except Exception:
            log.warning("publishing events failed; the outbox relay will retry", exc_info=True)

    async def _publish(self, session: AsyncSession, rows: Sequence[OutboxEvent]) -> None:
        if not rows:
            return
        async with asyncio.timeout(self.publish_timeout):
            # Consecutive rows of one stream go in one round trip, in commit order.
            start = 0
            for end in range(1, len(rows) + 1):
                if end == len(rows) or rows[end].stream != rows[start].stream:
                    envelopes = [Envelope.from_json(row.payload) for row in rows[start:end]]
                    await self.bus.publish_many(self.stream_key(rows[start].stream), envelopes)
                    start = end
        ids = [row.id for row in rows]
        await session.execute(
            update(OutboxEvent).where(OutboxEvent.id.in_(ids)).values(published_at=utcnow())
        )
        await session.commit()

    async def relay_once(self, *, grace_seconds: float | None = None) -> int:
        """Publish unpublished rows older than the grace period; returns how many."""
        grace = self.grace_seconds if grace_seconds is None else grace_seconds
        total = 0
        async with self._relay_lock:
            while True:
                async with self.db.session() as session:
                    cutoff = utcnow() - timedelta(seconds=grace)
                    rows = (
                        await session.scalars(
                            select(OutboxEvent)
                            .where(OutboxEvent.published_at.is_(None))
                            .where(OutboxEvent.created_at <= cutoff)
                            .order_by(OutboxEvent.id)
                            .limit(self.batch)
                        )
                    ).all()
                    await self._publish(session, rows)
                total += len(rows)
                if len(rows) < self.batch:
                    return total

    async def prune(self) -> int:
        """Delete published rows past their retention; returns how many."""
        cutoff = utcnow() - timedelta(seconds=self.retention_seconds)
        async with self.db.session() as session:
            result = await session.execute(
                delete(OutboxEvent)
                .where(OutboxEvent.published_at.is_not(None))
                .where(OutboxEvent.published_at < cutoff)
                .execution_options(synchronize_session=False)
            )
            await session.commit()
        return int(getattr(result, "rowcount", 0) or 0)

    async def run(self, *, interval: float, prune_every: float = 3600.0) -> None:
        """Relay until cancelled; a failing sweep is logged and retried on the next one."""
        last_prune = 0.0
        while True:
            try:
                published = await self.relay_once()
                if published:
                    log.info("outbox relay published %d late events", published)
                if time.monotonic() - last_prune >= prune_every:
                    last_prune = time.monotonic()
                    await self.prune()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("outbox relay sweep failed", exc_info=True)
            await asyncio.sleep(interval)
