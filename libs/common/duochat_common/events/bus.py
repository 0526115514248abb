"""Publish to and consume from Redis Streams with consumer groups.

Delivery is at least once. A consumer:
- skips an event whose id it already handled (a marker per group, set after success), so a
  redelivered entry changes nothing;
- reclaims entries that another (dead) consumer of its group left pending (XAUTOCLAIM);
- moves an entry that keeps failing, or cannot be parsed, to ``<stream>.dead`` and acks it, so one
  poison entry never blocks the group;
- on its first pass reads the entries it had read and not acked before a restart (its own
  pending list, under the same consumer name), so they are not left to the reclaim timer;
- takes over at once the pending entries of a consumer of its group that has not read for
  ``dead_after_ms`` (a live one reads at least every ``block_ms``): an instance that died and
  came back under another name has its entries handled within seconds, not ``claim_idle_ms``.

An entry holds one event (field ``event``: the envelope as JSON) or, from a producer that
appends a batch at once, several (field ``events``: a JSON array of envelopes, at most
``EVENTS_PER_ENTRY``): one XADD per batch instead of one per event. A consumer handles the events
of an entry in order and acknowledges the entry once all are handled; an entry whose events keep
failing is dead-lettered whole (its done events are marked and skipped if it is ever replayed).

The done markers of a group are sets of event ids, ``DONE_SHARDS`` per time bucket of
``done_ttl_s`` (``<stream>:done:<group>:<bucket>:<shard>``, each expiring when the bucket after
its own ends), so an event is remembered for ``done_ttl_s`` at least. A batch is checked with
one SMISMEMBER per shard and bucket it touches and marked with one SADD per shard, instead of
one EXISTS and one SET per event: those were two thirds of notify's CPU per chat message (bench
notes of 2026-12-01). Markers of the former layout (a key per event) are not read: an entry
handled before an upgrade but not yet acknowledged is handled once more after it. The bucket
before the current one is looked up only for events made before the current bucket began (by
the envelope's ``occurredAt``, give or take ``CLOCK_SKEW_S``): an event made later cannot have
been marked in it. So in the steady state a batch costs one SMISMEMBER per shard, not two.
An entry read as new (``>``) has no failed attempts recorded, so acknowledging it does not
clear them either.

No command touches two keys, so the bus runs on one Redis and on a Redis Cluster alike (the
shards spread a group's markers over its nodes), and the dead-letter step appends before it
acks (a crash in between dead-letters the entry twice, which loses nothing).

Given ``metrics``, a consumer counts what it takes and dead-letters, and its group's lag is read
at each scrape (``events.metrics``). Given a ``tracer``, each event is handled in a span of the
trace named by its envelope's ``traceparent``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from pydantic import TypeAdapter, ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from duochat_common.events.envelope import Envelope
from duochat_common.redis_store import ExpiryRenewals
from duochat_common.tracing import consumer_span, link_to

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

    from duochat_common.events.metrics import BusMetrics

log = logging.getLogger(__name__)

Handler = Callable[[Envelope], Awaitable[None]]
FIELD = "event"
MANY_FIELD = "events"
EVENTS_PER_ENTRY = 50
DONE_SHARDS = 4  # sets of done markers per group and time bucket
# How far a producer's clock (an envelope's occurredAt) may run ahead of a consumer's.
CLOCK_SKEW_S = 300
_ENVELOPES = TypeAdapter(list[Envelope])


def entry_fields(events: Sequence[str]) -> dict[str, str]:
    """The fields of one entry holding ``events`` (envelopes as JSON, at most
    ``EVENTS_PER_ENTRY``): one event as ``event``, several as the ``events`` array."""
    if len(events) == 1:
        return {FIELD: events[0]}
    return {MANY_FIELD: "[" + ",".join(events) + "]"}


def entry_envelopes(fields: dict[str, Any] | None) -> tuple[str, str, list[Envelope]]:
    """An entry's field name, raw text and envelopes; raises ValueError (or pydantic's
    ValidationError) when they cannot be read."""
    fields = fields or {}
    many = fields.get(MANY_FIELD)
    if many is not None:
        envelopes = _ENVELOPES.validate_json(many)
        if not envelopes:
            raise ValueError("an entry with no events")
        return MANY_FIELD, many, envelopes
    raw = fields.get(FIELD, "")
    return FIELD, raw, [Envelope.from_json(raw)]


def cancel_requested() -> bool:
    """True when the current task was asked to stop, even if the CancelledError got lost.

    On Python 3.11, ``asyncio.wait_for`` swallows a cancellation that lands just as the awaited
    call finishes (gh-86296), and redis-py wraps every command send in it. A loop that only
    relies on the exception may then never stop; the request stays counted in ``cancelling()``.
    """
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _made_at(event: Envelope) -> float:
    """When the event was made, in seconds (an ``occurredAt`` without a zone is UTC)."""
    made = event.occurred_at
    return (made if made.tzinfo is not None else made.replace(tzinfo=UTC)).timestamp()


def dead_letter_stream(stream: str) -> str:
    return f"{stream}.dead"


async def stream_events(redis: aioredis.Redis, stream: str) -> list[Envelope]:
    """Every event in a stream, in order (for tests and tools: consumers read by group)."""
    entries: Any = await redis.xrange(stream)
    return [e for _, fields in entries for e in entry_envelopes(fields)[2]]


class EventBus:
    """Appends envelopes to streams (each producer owns its stream)."""

    def __init__(self, redis: aioredis.Redis, *, maxlen: int = 200_000) -> None:
        self.redis = redis
        self.maxlen = maxlen

    async def publish(self, stream: str, envelope: Envelope) -> str:
        entry_id = await self.redis.xadd(
            stream, {FIELD: envelope.to_json()}, maxlen=self.maxlen, approximate=True
        )
        return str(entry_id)

    async def publish_many(self, stream: str, envelopes: Sequence[Envelope]) -> list[str]:
        """One round trip for a batch."""
        if not envelopes:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for envelope in envelopes:
                pipe.xadd(stream, {FIELD: envelope.to_json()}, maxlen=self.maxlen, approximate=True)
            return list(await pipe.execute())


class Consumer:
    """One member of a consumer group, running ``handler`` for each event."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        stream: str,
        group: str,
        consumer: str,
        handler: Handler,
        batch: int = 100,
        block_ms: int = 2000,
        claim_idle_ms: int = 30_000,
        max_attempts: int = 5,
        done_ttl_s: int = 7 * 86400,
        dead_after_ms: int = 10_000,
        linger_ms: int = 0,
        metrics: BusMetrics | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self.redis = redis
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.handler = handler
        self.batch = batch
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.max_attempts = max_attempts
        self.done_ttl_s = done_ttl_s
        # A consumer blocked in its read looks idle for up to block_ms: never call that dead.
        self.dead_after_ms = max(dead_after_ms, 3 * block_ms)
        self._last_dead_check = 0.0
        # Derived from the stream name, so they share its namespace (``settings.key``).
        self._attempts_key = f"{stream}:attempts:{group}"
        # A done-marker set's expiry is set when the consumer first writes it, then once a minute.
        self._expiring = ExpiryRenewals()
        self._last_claim = 0.0
        # After a read that returned less than a full batch, the next waits this long, so that
        # a steady trickle is handled in batches instead of an entry or two per round trip.
        self.linger_s = linger_ms / 1000
        self._read_after = 0.0
        self._recovered = False
        self.tracer = tracer
        self._consumed = self._dead = None
        if metrics is not None:
            metrics.watch(redis, stream, group)
            self._consumed = metrics.consumed.labels(stream, group)
            self._dead = metrics.dead_lettered.labels(stream, group)

    def _done_key(self, bucket: int, shard: int) -> str:
        return f"{self.stream}:done:{self.group}:{bucket}:{shard}"

    def _by_shard(self, event_ids: Sequence[str]) -> dict[int, list[str]]:
        shards: dict[int, list[str]] = {}
        for event_id in event_ids:
            shards.setdefault(zlib.crc32(event_id.encode()) % DONE_SHARDS, []).append(event_id)
        return shards

    def mark_done(self, pipe: Any, event_ids: Sequence[str]) -> None:
        """Queue on ``pipe`` the commands that mark ``event_ids`` handled by this group."""
        if not event_ids:
            return
        bucket = int(time.time()) // self.done_ttl_s
        for shard, ids in self._by_shard(event_ids).items():
            key = self._done_key(bucket, shard)
            pipe.sadd(key, *ids)
            if self._expiring.due(key):  # an absolute time: the same whoever sets it
                pipe.expireat(key, (bucket + 2) * self.done_ttl_s)

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _dead_letter(
        self, entry_id: str, raw: str, reason: str, *, field: str = FIELD
    ) -> None:
        log.error(
            "event dead-lettered",
            extra={"fields": {"stream": self.stream, "entry": entry_id, "reason": reason}},
        )
        if self._dead is not None:
            self._dead.inc()
        # Three keys in three slots: append first, so that a crash can only repeat the letter.
        await self.redis.xadd(
            dead_letter_stream(self.stream),
            {field: raw, "entry": entry_id, "group": self.group, "reason": reason[:500]},
            maxlen=100_000,
            approximate=True,
        )
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xack(self.stream, self.group, entry_id)
            pipe.hdel(self._attempts_key, entry_id)
            await pipe.execute()

    async def already_done(self, events: Sequence[Envelope]) -> list[bool]:
        """Whether each event was handled by this group (one round trip per node): looked up
        in its shard's set of this time bucket and, if it was made before this bucket began
        (give or take ``CLOCK_SKEW_S``), of the one before."""
        if not events:
            return []
        bucket = int(time.time()) // self.done_ttl_s
        recent = bucket * self.done_ttl_s + CLOCK_SKEW_S  # made after: marked in this bucket
        older = [e.id for e in events if _made_at(e) < recent]
        lookups = [(bucket, *s) for s in self._by_shard([e.id for e in events]).items()]
        lookups += [(bucket - 1, *s) for s in self._by_shard(older).items()]
        async with self.redis.pipeline(transaction=False) as pipe:
            for in_bucket, shard, ids in lookups:
                pipe.smismember(self._done_key(in_bucket, shard), ids)
            replies = await pipe.execute()
        done = {
            event_id
            for (_, _, ids), reply in zip(lookups, replies, strict=True)
            for event_id, hit in zip(ids, reply, strict=True)
            if hit
        }
        return [e.id in done for e in events]

    async def _process(
        self, entries: list[tuple[str, dict[str, Any]]], *, fresh: bool = False
    ) -> int:
        """Handle entries; ``fresh``: read as new (``>``), so none has failed attempts."""
        parsed: list[tuple[str, str, str, list[Envelope]]] = []
        for entry_id, fields in entries:
            try:
                field, raw, envelopes = entry_envelopes(fields)
            except (ValidationError, ValueError, json.JSONDecodeError) as exc:
                field = MANY_FIELD if MANY_FIELD in (fields or {}) else FIELD
                raw = str((fields or {}).get(field, ""))
                await self._dead_letter(entry_id, raw, f"unparseable: {exc}", field=field)
                continue
            parsed.append((entry_id, field, raw, envelopes))
        if not parsed:
            return 0
        done = iter(await self.already_done([e for *_, envs in parsed for e in envs]))
        handled = 0
        in_batch: set[str] = set()  # the same event twice in one batch runs once
        for entry_id, field, raw, envelopes in parsed:
            marked: list[str] = []  # handled now: marked done whatever the entry's outcome
            failed: Exception | None = None
            for envelope in envelopes:
                already = next(done)
                if already or envelope.id in in_batch:
                    continue
                try:
                    if self.tracer is None:
                        await self.handler(envelope)
                    else:
                        with self.span([envelope]):
                            await self.handler(envelope)
                except Exception as exc:
                    failed = exc
                    log.warning(
                        "event handler failed",
                        exc_info=True,
                        extra={"fields": {"type": envelope.type, "id": envelope.id}},
                    )
                    continue
                in_batch.add(envelope.id)
                marked.append(envelope.id)
            if failed is not None:
                await self._failed(entry_id, field, raw, marked, failed)
                continue
            async with self.redis.pipeline(transaction=False) as pipe:
                self.mark_done(pipe, marked)
                pipe.xack(self.stream, self.group, entry_id)
                if not fresh:
                    pipe.hdel(self._attempts_key, entry_id)
                await pipe.execute()
            handled += 1
        return handled

    async def _failed(
        self, entry_id: str, field: str, raw: str, marked: list[str], exc: Exception
    ) -> None:
        """An entry with an event whose handler failed: the events handled are marked done,
        the entry stays pending for a retry, and after ``max_attempts`` it is dead-lettered."""
        async with self.redis.pipeline(transaction=False) as pipe:
            self.mark_done(pipe, marked)
            pipe.hincrby(self._attempts_key, entry_id, 1)
            attempts = int((await pipe.execute())[-1])
        log.warning("event entry failed", extra={"fields": {"entry": entry_id, "try": attempts}})
        if attempts >= self.max_attempts:
            await self._dead_letter(entry_id, raw, f"{type(exc).__name__}: {exc}", field=field)

    @contextlib.contextmanager
    def span(self, envelopes: Sequence[Envelope]) -> Iterator[None]:
        """The span that handles ``envelopes``: in the trace of the first that has one, linked
        to the others' (a batch can have one parent only). Nothing when tracing is off."""
        if self.tracer is None or not envelopes:
            yield
            return
        parents = [e.traceparent for e in envelopes if e.traceparent]
        links = [link for link in map(link_to, parents[1:]) if link is not None]
        first = envelopes[0]
        with consumer_span(
            self.tracer,
            f"{first.type} process" if len(envelopes) == 1 else f"{self.stream} process",
            traceparent=parents[0] if parents else None,
            attributes={
                "messaging.system": "redis_streams",
                "messaging.destination.name": self.stream,
                "messaging.consumer.group.name": self.group,
                "messaging.batch.message_count": len(envelopes),
                "messaging.message.id": first.id,
            },
            links=links or None,
        ):
            yield

    async def reclaim(self) -> int:
        """Take over entries idle longer than ``claim_idle_ms`` (a dead consumer's, or retries)."""
        start = "0-0"
        total = 0
        while True:
            reply = await self.redis.xautoclaim(
                self.stream, self.group, self.consumer, self.claim_idle_ms, start, count=self.batch
            )
            start, entries = reply[0], reply[1]
            entries = [(eid, fields) for eid, fields in entries if fields is not None]
            if entries:
                total += len(entries)
                await self._process(entries)
            if start in ("0-0", b"0-0") or not entries:
                return total

    async def recover(self) -> int:
        """Handle the entries this consumer name read and never acked (a run before a restart).

        Reading ``0`` instead of ``>`` returns the consumer's own pending list, whatever its idle
        time, so a restarted instance delivers them at once. An entry whose handler fails again
        stays pending and goes the usual way (retries by reclaim, then the dead-letter stream).
        """
        start = "0"
        total = 0
        while True:
            reply: Any = await self.redis.xreadgroup(
                self.group, self.consumer, {self.stream: start}, count=self.batch
            )
            entries = [entry for _stream, batch in reply or [] for entry in batch]
            if not entries:
                self._recovered = True
                return total
            start = entries[-1][0]
            total += len(entries)
            self._count(len(entries))
            gone = [eid for eid, fields in entries if not fields]  # trimmed from the stream
            if gone:
                await self.redis.xack(self.stream, self.group, *gone)
            await self._process([(eid, fields) for eid, fields in entries if fields])

    async def take_over_dead(self) -> int:
        """Claim and handle the pending entries of group members silent for ``dead_after_ms``.
        Returns entries taken over."""
        total = 0
        members: Any = await self.redis.xinfo_consumers(self.stream, self.group)
        for member in members:
            name = str(member["name"])
            if name == self.consumer or not int(member["pending"]):
                continue
            if int(member["idle"]) >= self.dead_after_ms:
                total += await self._take_over(name)
        return total

    async def _take_over(self, name: str) -> int:
        # The members stay listed: deleting one would drop entries it might still read if it
        # were only slow, and a slow member's entries handled twice change nothing.
        total = 0
        while True:
            pending: Any = await self.redis.xpending_range(
                self.stream, self.group, "-", "+", self.batch, consumername=name
            )
            if not pending:
                return total
            # An entry is at least as idle as the member it was read by; the same floor makes
            # each entry go to one of two instances that take over at once.
            claimed: Any = await self.redis.xclaim(
                self.stream,
                self.group,
                self.consumer,
                self.dead_after_ms,
                [p["message_id"] for p in pending],
            )
            if not claimed:
                return total
            total += len(claimed)
            trimmed = [eid for eid, fields in claimed if not fields]
            if trimmed:
                await self.redis.xack(self.stream, self.group, *trimmed)
            await self._process([(eid, fields) for eid, fields in claimed if fields])

    async def run_once(self) -> int:
        """Reclaim if due, then read one batch of new entries. Returns entries seen.

        ``run`` calls ``recover`` once before its first pass."""
        try:
            seen = await self._run_once()
            self._count(seen)
            return seen
        except ResponseError as exc:
            # Redis lost the group or the whole stream (a restart without persistence, or a
            # delete, which also UNBLOCKs a waiting read): recreate it. Events handled before
            # stay skipped by their markers.
            if not str(exc).startswith(("NOGROUP", "UNBLOCKED", "no such key")):
                raise
            log.warning("consumer group missing; recreating it", extra={"fields": self._where})
            await self.ensure_group()
            return 0

    def _count(self, seen: int) -> None:
        if seen and self._consumed is not None:
            self._consumed.inc(seen)

    @property
    def _where(self) -> dict[str, str]:
        return {"stream": self.stream, "group": self.group, "consumer": self.consumer}

    async def _run_once(self) -> int:
        seen = 0
        now = time.monotonic()
        if now - self._last_dead_check >= self.dead_after_ms / 4000:
            self._last_dead_check = now
            seen += await self.take_over_dead()
        if now - self._last_claim >= self.claim_idle_ms / 2000:
            self._last_claim = now
            seen += await self.reclaim()
        wait = self._read_after - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        reply: Any = await self.redis.xreadgroup(
            self.group, self.consumer, {self.stream: ">"}, count=self.batch, block=self.block_ms
        )
        read = 0
        for _stream, entries in reply or []:
            read += len(entries)
            await self._process(entries, fresh=True)
        partial = 0 < read < self.batch
        self._read_after = time.monotonic() + self.linger_s if partial else 0.0
        return seen + read

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Consume until ``stop`` is set or the task is cancelled; survives Redis outages."""
        stop = stop or asyncio.Event()
        backoff = 0.1
        while not stop.is_set():
            try:
                await self.ensure_group()
                if not self._recovered:
                    await self.recover()
                while not stop.is_set():
                    if cancel_requested():
                        raise asyncio.CancelledError
                    await self.run_once()  # waits up to block_ms in XREADGROUP when idle
                    backoff = 0.1
            except asyncio.CancelledError:
                raise
            except (RedisConnectionError, RedisTimeoutError, OSError):
                log.warning("redis unavailable, consumer retrying", exc_info=False)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception:
                log.exception("consumer loop error")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            if cancel_requested():
                raise asyncio.CancelledError
