"""Fan-out across instances on one Redis Stream, and the events other services read.

Every instance appends what it stored (in commit order) and reads everything appended, handing
each message to its hub, which delivers to local subscribers in id order. One stream entry
carries a whole batch: fields ``r<k>`` (room), ``i<k>`` (message id, ``0`` for a transient
ENTER/QUIT) and ``b<k>`` (the MESSAGE body as sent to clients), so one XADD serves a batch and
the reader routes without parsing JSON.

The stream is only the fast path. A message whose entry never arrives (its instance was killed
between commit and XADD, or Redis lost it) is found by the hub's gap fill and sweep, which read
the database.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from duochat_common.events.bus import FIELD
from duochat_common.events.envelope import Envelope

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Entry:
    room_id: str
    id: int  # 0 = transient
    body: str


class Sink(Protocol):
    def on_entry(self, room_id: str, msg_id: int, body: str) -> None: ...


class Publisher:
    """Appends fan-out entries and events in order, in pipelined batches, retrying through
    Redis outages (a receipt never waits for this: the database already has the message)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        fanout_stream: str,
        events_stream: str,
        maxlen: int = 100_000,
        batch: int = 1000,
        max_backlog: int = 200_000,
    ) -> None:
        self.redis = redis
        self.fanout_stream = fanout_stream
        self.events_stream = events_stream
        self.maxlen = maxlen
        self.batch = batch
        self.max_backlog = max_backlog
        self._items: deque[Entry | Envelope | str] = deque()
        self._wake = asyncio.Event()
        self.published = 0

    def enqueue(self, items: list[Entry | Envelope | str]) -> None:
        """Fan-out entries and events (an Envelope, or one already encoded as JSON)."""
        self._items.extend(items)
        overflow = len(self._items) - self.max_backlog
        if overflow > 0:
            # Redis has been away too long: keep the newest. Subscribers still get the dropped
            # messages from the database (sweep), and notify misses their events.
            log.error("fan-out backlog full, dropping %d oldest entries", overflow)
            for _ in range(overflow):
                self._items.popleft()
        self._wake.set()

    def pending(self) -> int:
        return len(self._items)

    async def _flush(self) -> None:
        while self._items:
            take = [self._items[i] for i in range(min(self.batch, len(self._items)))]
            fields: dict[Any, Any] = {}
            async with self.redis.pipeline(transaction=False) as pipe:
                for item in take:
                    if isinstance(item, Entry):
                        k = len(fields) // 3
                        fields[f"r{k}"] = item.room_id
                        fields[f"i{k}"] = item.id
                        fields[f"b{k}"] = item.body
                    else:
                        pipe.xadd(
                            self.events_stream,
                            {FIELD: item if isinstance(item, str) else item.to_json()},
                            maxlen=200_000,
                            approximate=True,
                        )
                if fields:
                    pipe.xadd(self.fanout_stream, fields, maxlen=self.maxlen, approximate=True)
                await pipe.execute()
            for _ in take:
                self._items.popleft()
            self.published += len(take)

    async def run(self) -> None:
        backoff = 0.05
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._flush()
                backoff = 0.05
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError):
                log.warning("fan-out publish failed (redis unavailable); retrying")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                self._wake.set()


class FanoutReader:
    """Reads every fan-out entry from where this instance started, and hands it to the sink."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        stream: str,
        sink: Sink,
        block_ms: int = 1000,
        count: int | None = 1000,
        on_reconnect: Callable[[], None] | None = None,
    ) -> None:
        self.redis = redis
        self.stream = stream
        self.sink = sink
        self.block_ms = block_ms
        self.count = count
        self.on_reconnect = on_reconnect
        self.last_id: str | None = None

    async def _start_id(self) -> str:
        newest: Any = await self.redis.xrevrange(self.stream, count=1)
        return str(newest[0][0]) if newest else "0-0"

    async def run(self) -> None:
        backoff = 0.05
        failed = False
        while True:
            try:
                if self.last_id is None:
                    self.last_id = await self._start_id()
                started = time.monotonic()
                reply: Any = await self.redis.xread(
                    {self.stream: self.last_id}, count=self.count, block=self.block_ms
                )
                if failed:
                    failed = False
                    if self.on_reconnect is not None:
                        self.on_reconnect()
                backoff = 0.05
                if not reply:
                    # An in-process store may answer an empty read at once instead of blocking.
                    if time.monotonic() - started < self.block_ms / 4000:
                        await asyncio.sleep(0.02)
                    continue
                sink = self.sink
                for _stream, entries in reply:
                    for entry_id, fields in entries:
                        self.last_id = entry_id
                        try:
                            for k in range(len(fields) // 3):
                                sink.on_entry(
                                    fields[f"r{k}"], int(fields[f"i{k}"]), fields[f"b{k}"]
                                )
                        except Exception:
                            log.exception("bad fan-out entry %s", entry_id)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError):
                if not failed:
                    log.warning("fan-out read failed (redis unavailable); retrying")
                failed = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
