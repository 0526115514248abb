"""Everything a chat instance appends to Redis, in order, in pipelined batches.

Forwarded SENDs (to an owner's inbox), deliveries and acks (to an instance's delivery stream)
and events (to ``events.chat``) all leave through one queue: one round trip carries whatever
accumulated while the previous one was in flight. Each command touches one key, so the same
pipeline works on one Redis and on a Redis Cluster (where redis-py splits it by node).

Events (``bulk`` appends) wait in a lane of their own: what a conversation waits for (forwards,
deliveries, acks) never queues behind them. They ride with the conversation's appends, at most
``riders`` entries a round trip (the writer makes one entry and one delivery per batch, so in
steady state each batch's events leave with its deliveries and cost no round trip of their
own); when nothing else waits they leave on their own, ``bulk_batch`` entries a round trip, so
a backlog of events (after an outage, or a sweep) holds a conversation's appends for one
bounded round trip at most.

Through a Redis outage the queue keeps its items and retries with backoff. It is bounded:
beyond ``max_backlog`` the oldest deliveries go (subscribers read those messages back from the
database); events are never dropped here, since the outbox keeps them until ``on_done``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from duochat_common.events.bus import cancel_requested
from duochat_common.redis_store import ExpiryRenewals

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Append:
    stream: str
    fields: dict[Any, Any]
    maxlen: int = 100_000
    # Streams named after an instance expire when it is gone for good.
    expire_ms: int | None = None
    on_done: Callable[[], None] | None = None
    # An event entry: in the lane that rides along and is never shed (see the module's doc).
    bulk: bool = False


class Outbound:
    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        batch: int = 500,
        max_backlog: int = 200_000,
        riders: int = 4,
        bulk_batch: int = 50,
    ):
        self.redis = redis
        self.batch = batch
        self.max_backlog = max_backlog
        self.riders = riders
        self.bulk_batch = bulk_batch
        self._items: deque[Append] = deque()
        self._bulk: deque[Append] = deque()  # never dropped, never in the backlog's count
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        # An expiring stream has its expiry set on its first append, then once a minute (its
        # TTL, an hour, is far longer).
        self.expiries = ExpiryRenewals()

    def put(self, item: Append) -> None:
        self._idle.clear()
        self._wake.set()
        if item.bulk:
            self._bulk.append(item)
            return
        self._items.append(item)
        if len(self._items) > self.max_backlog:
            self._shed()

    def _shed(self) -> None:
        dropped = len(self._items) - self.max_backlog
        for _ in range(dropped):
            self._items.popleft()
        log.error("redis backlog full: dropped %d oldest deliveries", dropped)

    def pending(self) -> int:
        return len(self._items) + len(self._bulk)

    async def flushed(self, within: float) -> bool:
        """Wait until everything queued so far is appended (or ``within`` passes)."""
        try:
            async with asyncio.timeout(within):
                await self._idle.wait()
            return True
        except TimeoutError:
            return False

    def _take(self) -> tuple[list[Append], list[Append]]:
        """The next round trip's appends: the conversation's, and the events that ride along
        (or, when nothing else waits, a bounded run of events)."""
        items, bulk = self._items, self._bulk
        take = [items.popleft() for _ in range(min(self.batch, len(items)))]
        room = self.riders if take else self.bulk_batch
        return take, [bulk.popleft() for _ in range(min(room, len(bulk)))]

    async def _flush(self) -> None:
        while self._items or self._bulk:
            take, riding = self._take()
            expiring: dict[str, int] = {}
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for item in (*take, *riding):
                        pipe.xadd(item.stream, item.fields, maxlen=item.maxlen, approximate=True)
                        if item.expire_ms is not None and self.expiries.due(item.stream):
                            expiring[item.stream] = item.expire_ms
                    for stream, expire_ms in expiring.items():  # once per stream, after its XADDs
                        pipe.pexpire(stream, expire_ms)
                    await pipe.execute()
            except BaseException:
                self._items.extendleft(reversed(take))  # in order, for the retry
                self._bulk.extendleft(reversed(riding))
                self.expiries.forget(expiring)  # a Redis that restarted empty needs them again
                raise
            for item in (*take, *riding):
                if item.on_done is not None:
                    try:
                        item.on_done()
                    except Exception:
                        log.exception("outbound completion callback failed")

    async def run(self) -> None:
        backoff = 0.05
        while not cancel_requested():
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._flush()
                backoff = 0.05
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError):
                log.warning("redis append failed (redis unavailable); retrying")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                self._wake.set()
                continue
            if not self._items and not self._bulk:
                self._idle.set()
