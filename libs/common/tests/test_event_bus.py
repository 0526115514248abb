"""The event bus on Redis Streams: at-least-once delivery that loses nothing and repeats nothing.

- a consumer killed mid-batch leaves its entries pending, and another consumer reclaims them;
- a poison entry (unparseable, or one whose handler keeps failing) goes to the dead-letter
  stream and does not hold up the entries behind it;
- an event that is delivered again after it was handled changes nothing;
- a consumer survives its group disappearing (NOGROUP);
- an entry may hold several events (a producer's batch): they are handled in order, the entry
  is acknowledged once all are, and a failing one neither repeats nor loses the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from redis.asyncio import Redis

from duochat_common.events import Consumer, Envelope, EventBus
from duochat_common.events import bus as bus_module
from duochat_common.events.bus import (
    CLOCK_SKEW_S,
    DONE_SHARDS,
    EVENTS_PER_ENTRY,
    dead_letter_stream,
    entry_envelopes,
    entry_fields,
    stream_events,
)
from duochat_common.events.schemas import BoardApplied, UserRef
from duochat_common.redis_store import create_redis
from duochat_common.testing import redis_shape_url, unique_prefix

GROUP = "testers"


@pytest.fixture
def prefix() -> str:
    return unique_prefix()


@contextlib.asynccontextmanager
async def shaped_redis(shape: str, prefix: str) -> AsyncIterator[Redis]:
    """A client of one Redis server, the Redis Cluster or the in-process store; afterwards the
    keys of ``prefix`` are deleted."""
    if shape == "memory":
        client = create_redis(f"memory://test-{uuid.uuid4().hex}")
    else:
        found = redis_shape_url(shape)
        if found is None:
            pytest.skip("no Redis Cluster (start one with .ci/redis-cluster start)")
        client = create_redis(found[0], cluster=found[1])
    try:
        yield client
    finally:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)  # the cluster client splits this by slot
        await client.aclose()


@pytest.fixture
async def redis(prefix: str) -> AsyncIterator[Redis]:
    async with shaped_redis("redis", prefix) as client:
        yield client


@pytest.fixture
async def cluster_redis(prefix: str) -> AsyncIterator[Redis]:
    """The local Redis Cluster (``.ci/redis-cluster``)."""
    async with shaped_redis("cluster", prefix) as client:
        yield client


@pytest.fixture(params=["redis", "cluster", "memory"])
async def any_redis(request: pytest.FixtureRequest, prefix: str) -> AsyncIterator[Redis]:
    """Real Redis, a Redis Cluster, then the embedded mode's in-process store."""
    async with shaped_redis(request.param, prefix) as client:
        yield client


@pytest.fixture(params=["redis", "cluster"])
async def real_redis(request: pytest.FixtureRequest, prefix: str) -> AsyncIterator[Redis]:
    """One Redis server, then a Redis Cluster."""
    async with shaped_redis(request.param, prefix) as client:
        yield client


class Recorder:
    """A handler that records what it saw; ``fail`` decides, per event, to raise."""

    def __init__(self, fail: Callable[[Envelope], BaseException | None] | None = None) -> None:
        self.seen: list[Envelope] = []
        self.calls = 0
        self.fail = fail

    async def __call__(self, envelope: Envelope) -> None:
        self.calls += 1
        if self.fail is not None:
            error = self.fail(envelope)
            if error is not None:
                raise error
        self.seen.append(envelope)

    @property
    def ids(self) -> list[str]:
        return [e.id for e in self.seen]


def event(n: int, type_: str = "test.happened") -> Envelope:
    return Envelope(type=type_, data={"n": n})


def consumer(redis: Redis, stream: str, handler: Any, name: str = "c1", **kw: Any) -> Consumer:
    return Consumer(redis, stream=stream, group=GROUP, consumer=name, handler=handler, **kw)


async def pending(redis: Redis, stream: str) -> int:
    summary = await redis.xpending(stream, GROUP)
    return int(summary["pending"])


async def dead_letters(redis: Redis, stream: str) -> list[dict[str, str]]:
    entries: Any = await redis.xrange(dead_letter_stream(stream))
    return [fields for _entry_id, fields in entries]


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


@pytest.fixture
def stream(prefix: str) -> str:
    return f"{prefix}events.test"


async def test_publish_and_consume(any_redis: Redis, stream: str) -> None:
    bus = EventBus(any_redis)
    sent = [event(1), event(2), event(3)]
    await bus.publish(stream, sent[0])
    await bus.publish_many(stream, sent[1:])
    handler = Recorder()
    reader = consumer(any_redis, stream, handler, block_ms=100)
    await reader.ensure_group()
    assert await reader.run_once() == 3
    assert handler.seen == sent  # same ids, types, data and timestamps, in order
    assert await pending(any_redis, stream) == 0
    assert await reader.run_once() == 0  # nothing new


async def test_a_group_created_late_still_sees_earlier_events(
    real_redis: Redis, stream: str
) -> None:
    await EventBus(real_redis).publish(stream, event(1))
    handler = Recorder()
    reader = consumer(real_redis, stream, handler, block_ms=100)
    await reader.ensure_group()
    await reader.ensure_group()  # idempotent
    await reader.run_once()
    assert len(handler.seen) == 1


async def test_the_run_loop_consumes_until_stopped(any_redis: Redis, stream: str) -> None:
    handler = Recorder()
    reader = consumer(any_redis, stream, handler, block_ms=100)
    stop = asyncio.Event()
    task = asyncio.create_task(reader.run(stop))
    bus = EventBus(any_redis)
    for n in range(5):
        await bus.publish(stream, event(n))

    async def all_seen() -> bool:
        return len(handler.seen) == 5

    await eventually(all_seen)
    assert [e.data["n"] for e in handler.seen] == [0, 1, 2, 3, 4]
    stop.set()
    await asyncio.wait_for(task, timeout=2)


async def _cpu_while_idle(redis: Redis, stream: str, *, block_ms: int) -> float:
    reader = consumer(redis, stream, Recorder(), block_ms=block_ms)
    task = asyncio.create_task(reader.run())
    await asyncio.sleep(0.2)  # past start-up
    started = time.process_time()
    await asyncio.sleep(1.0)
    used = time.process_time() - started
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return used


@pytest.mark.parametrize("block_ms", [2000, 100])
async def test_an_idle_consumer_does_not_spin(any_redis: Redis, stream: str, block_ms: int) -> None:
    # The loop has no pause of its own: an empty XREADGROUP must block, in every store, or the
    # loop burns a whole core.
    used = await _cpu_while_idle(any_redis, stream, block_ms=block_ms)
    assert used < 0.3, f"{used:.2f} s of CPU in 1 s idle"


@pytest.mark.timeout(20)
@pytest.mark.parametrize("block_ms", [1, 5])
async def test_a_consumer_on_memory_never_starves_the_event_loop(
    stream: str, block_ms: int
) -> None:
    # With a block of a millisecond or so the loop reads all the time; each read must still
    # give other tasks their turn.
    store = create_redis(f"memory://test-{uuid.uuid4().hex}")
    reader = consumer(store, stream, Recorder(), block_ms=block_ms, claim_idle_ms=10)
    task = asyncio.create_task(reader.run())
    try:
        started = time.monotonic()
        await asyncio.sleep(0.2)  # only returns if the consumer yields
        assert time.monotonic() - started < 5
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await store.aclose()


@pytest.mark.timeout(30)
async def test_cancelling_the_run_loop_always_stops_it(stream: str) -> None:
    # Python 3.11's wait_for (inside every redis-py send) can swallow a cancellation; the loop
    # must stop anyway, or a service's shutdown hangs.
    for _ in range(30):
        store = create_redis(f"memory://test-{uuid.uuid4().hex}")
        reader = consumer(store, stream, Recorder(), block_ms=1, claim_idle_ms=10)
        task = asyncio.create_task(reader.run())
        await asyncio.sleep(0.01)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=2)
        assert done, "the consumer ignored its cancellation"
        assert task.cancelled()
        await store.aclose()


async def test_a_consumer_killed_mid_batch_has_its_entries_reclaimed(
    any_redis: Redis, stream: str
) -> None:
    bus = EventBus(any_redis)
    sent = [event(n) for n in range(6)]
    await bus.publish_many(stream, sent)

    # The first consumer dies (its task is cancelled) while handling the third entry.
    def die_on_third(envelope: Envelope) -> BaseException | None:
        return asyncio.CancelledError() if envelope.data["n"] == 2 else None

    dying = Recorder(fail=die_on_third)
    first = consumer(any_redis, stream, dying, name="dies", block_ms=100, claim_idle_ms=100)
    await first.ensure_group()
    with pytest.raises(asyncio.CancelledError):
        await first.run_once()
    assert [e.data["n"] for e in dying.seen] == [0, 1]
    assert await pending(any_redis, stream) == 4  # the rest of its batch, never acked

    survivor = Recorder()
    second = consumer(any_redis, stream, survivor, name="lives", block_ms=100, claim_idle_ms=100)
    assert await second.run_once() == 0  # too fresh to take over yet
    await asyncio.sleep(0.15)
    second._last_claim = 0.0  # the next pass is a reclaim pass
    await second.run_once()
    assert [e.data["n"] for e in survivor.seen] == [2, 3, 4, 5]
    assert await pending(any_redis, stream) == 0


async def test_entries_a_consumer_read_and_never_acked_are_reclaimed(
    any_redis: Redis, stream: str
) -> None:
    bus = EventBus(any_redis)
    await bus.publish_many(stream, [event(n) for n in range(3)])
    handler = Recorder()
    reader = consumer(any_redis, stream, handler, name="alive", block_ms=100, claim_idle_ms=100)
    await reader.ensure_group()
    # a consumer that read the entries and then vanished
    await any_redis.xreadgroup(GROUP, "ghost", {stream: ">"}, count=10)
    assert await pending(any_redis, stream) == 3

    async def taken_over() -> bool:
        await reader.run_once()
        return len(handler.seen) == 3

    await eventually(taken_over)
    assert [e.data["n"] for e in handler.seen] == [0, 1, 2]
    assert await pending(any_redis, stream) == 0


async def test_unparseable_entries_are_dead_lettered_and_do_not_block(
    any_redis: Redis, stream: str
) -> None:
    await any_redis.xadd(stream, {"event": "this is not json"})
    await any_redis.xadd(stream, {"something": "else"})
    await any_redis.xadd(stream, {"event": '{"type": 1, "data": "nope"}'})
    good = event(1)
    await EventBus(any_redis).publish(stream, good)

    handler = Recorder()
    reader = consumer(any_redis, stream, handler, block_ms=100)
    await reader.ensure_group()
    await reader.run_once()
    assert handler.seen == [good]
    assert await pending(any_redis, stream) == 0
    dead = await dead_letters(any_redis, stream)
    assert len(dead) == 3
    assert dead[0]["event"] == "this is not json"
    assert all(fields["reason"].startswith("unparseable") for fields in dead)
    assert all(fields["group"] == GROUP for fields in dead)


async def test_an_event_whose_handler_keeps_failing_is_dead_lettered(
    any_redis: Redis, stream: str
) -> None:
    def poison(envelope: Envelope) -> BaseException | None:
        return RuntimeError("cannot handle this") if envelope.type == "poison" else None

    bad = event(0, "poison")
    after = [event(1), event(2)]
    await EventBus(any_redis).publish_many(stream, [bad, *after])

    handler = Recorder(fail=poison)
    reader = consumer(any_redis, stream, handler, block_ms=50, claim_idle_ms=50, max_attempts=3)
    await reader.ensure_group()
    await reader.run_once()
    assert handler.seen == after  # not held up by the poison entry in front of them

    async def dead_lettered() -> bool:
        await reader.run_once()
        return bool(await any_redis.xlen(dead_letter_stream(stream)))

    await eventually(dead_lettered)
    dead = await dead_letters(any_redis, stream)
    assert len(dead) == 1
    assert Envelope.from_json(dead[0]["event"]) == bad
    assert "RuntimeError: cannot handle this" in dead[0]["reason"]
    assert handler.calls == 3 + 2  # three tries of the poison, one of each good event
    assert await pending(any_redis, stream) == 0


async def test_after_a_partial_batch_the_next_read_lingers_so_a_trickle_is_batched(
    real_redis: Redis, stream: str
) -> None:
    bus = EventBus(real_redis)
    handler = Recorder()
    reader = consumer(real_redis, stream, handler, block_ms=2000, linger_ms=1000)
    await reader.ensure_group()
    await bus.publish(stream, event(1))
    assert await reader.run_once() == 1  # after a quiet spell: read at once
    await bus.publish(stream, event(2))
    second = asyncio.create_task(reader.run_once())
    await asyncio.sleep(0.1)
    await bus.publish(stream, event(3))  # within the linger: read with the one before
    assert await second == 2
    assert [e.data["n"] for e in handler.seen] == [1, 2, 3]


async def test_a_full_batch_is_followed_by_a_read_at_once(real_redis: Redis, stream: str) -> None:
    bus = EventBus(real_redis)
    for i in range(3):
        await bus.publish(stream, event(i))  # an entry each
    reader = consumer(real_redis, stream, Recorder(), batch=2, linger_ms=5000)
    await reader.ensure_group()
    assert await reader.run_once() == 2  # a full batch: more may be waiting
    started = time.monotonic()
    assert await reader.run_once() == 1
    assert time.monotonic() - started < 2.0


async def test_a_handler_that_fails_once_is_retried(any_redis: Redis, stream: str) -> None:
    failures = {"left": 1}

    def flaky(_: Envelope) -> BaseException | None:
        if failures["left"]:
            failures["left"] -= 1
            return ConnectionError("database blinked")
        return None

    handler = Recorder(fail=flaky)
    reader = consumer(any_redis, stream, handler, block_ms=50, claim_idle_ms=50)
    await reader.ensure_group()
    await EventBus(any_redis).publish(stream, event(7))
    await reader.run_once()
    assert handler.seen == []

    async def retried() -> bool:
        await reader.run_once()
        return len(handler.seen) == 1

    await eventually(retried)
    assert await any_redis.xlen(dead_letter_stream(stream)) == 0
    # The failed try was counted; the retry's success clears the count (a new entry, read with
    # ``>``, has none to clear).
    assert await any_redis.hlen(f"{stream}:attempts:{GROUP}") == 0


async def test_an_event_delivered_twice_is_handled_once(any_redis: Redis, stream: str) -> None:
    once = event(1)
    bus = EventBus(any_redis)
    await bus.publish(stream, once)
    handler = Recorder()
    reader = consumer(any_redis, stream, handler, block_ms=50)
    await reader.ensure_group()
    await reader.run_once()
    # the producer retried after a timeout, so the same event arrives in a second entry
    await bus.publish(stream, once)
    await bus.publish(stream, event(2))
    await reader.run_once()
    assert [e.data["n"] for e in handler.seen] == [1, 2]
    assert await pending(any_redis, stream) == 0


async def test_the_same_event_twice_in_one_batch_is_handled_once(
    any_redis: Redis, stream: str
) -> None:
    once = event(1)
    await EventBus(any_redis).publish_many(stream, [once, event(2), once])
    handler = Recorder()
    reader = consumer(any_redis, stream, handler, block_ms=50)
    await reader.ensure_group()
    await reader.run_once()
    assert [e.data["n"] for e in handler.seen] == [1, 2]
    assert await pending(any_redis, stream) == 0


async def test_a_batch_is_marked_done_in_one_set_per_shard_not_a_key_per_event(
    any_redis: Redis, stream: str
) -> None:
    batch = [event(i) for i in range(EVENTS_PER_ENTRY)]
    await publish_entry(any_redis, stream, batch)
    handler = Recorder()
    reader = consumer(any_redis, stream, handler)
    await reader.ensure_group()
    await reader.run_once()
    assert len(handler.seen) == EVENTS_PER_ENTRY
    markers = [k async for k in any_redis.scan_iter(match=f"{stream}:done:*", count=1000)]
    assert 0 < len(markers) <= DONE_SHARDS, markers
    assert sum([await any_redis.scard(k) for k in markers]) == EVENTS_PER_ENTRY
    for key in markers:  # each set expires when the bucket after its own ends
        assert 0 < await any_redis.ttl(key) <= 2 * reader.done_ttl_s
    assert await reader.already_done([*batch, event(99)]) == [True] * len(batch) + [False]
    # A Redis that restarted empty: the next batch's set gets its expiry again (within a minute).
    await any_redis.delete(*markers)
    reader._expiring.forget()  # as a minute later
    await publish_entry(any_redis, stream, [event(100)])
    await reader.run_once()
    again = [k async for k in any_redis.scan_iter(match=f"{stream}:done:*", count=1000)]
    assert again and all([await any_redis.ttl(k) > 0 for k in again])


async def test_an_event_is_remembered_across_a_bucket_boundary_for_done_ttl_at_least(
    any_redis: Redis, stream: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Buckets ahead of the real time, so the sets' real expiry (EXPIREAT) is in the future.
    base = (int(time.time()) // 100 + 1) * 100
    clock = {"now": float(base)}
    monkeypatch.setattr(
        bus_module, "time", SimpleNamespace(time=lambda: clock["now"], monotonic=time.monotonic)
    )
    reader = consumer(any_redis, stream, Recorder(), done_ttl_s=100)
    once = event(1)
    clock["now"] = base + 99.0  # the last second of a bucket
    async with any_redis.pipeline(transaction=False) as pipe:
        reader.mark_done(pipe, [once.id])
        await pipe.execute()
    clock["now"] = base + 100.0  # the next bucket: still remembered
    assert await reader.already_done([once]) == [True]
    clock["now"] = base + 199.0  # done_ttl_s after it was marked: still remembered
    assert await reader.already_done([once]) == [True]
    clock["now"] = base + 200.0  # two buckets on: no longer looked up (and its set expires)
    assert await reader.already_done([once]) == [False]


async def test_an_event_made_in_this_bucket_is_not_looked_up_in_the_one_before(
    real_redis: Redis, stream: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = (int(time.time()) // 1000 + 1) * 1000  # buckets of 1000 s, ahead of the real time
    clock = {"now": float(base + 999)}
    monkeypatch.setattr(
        bus_module, "time", SimpleNamespace(time=lambda: clock["now"], monotonic=time.monotonic)
    )
    reader = consumer(real_redis, stream, Recorder(), done_ttl_s=1000)
    made_late = base + 1000 + CLOCK_SKEW_S + 1  # well after the next bucket began
    before, late = (
        event(1),
        Envelope(
            type="test.happened", data={"n": 2}, occurred_at=datetime.fromtimestamp(made_late, UTC)
        ),
    )
    async with real_redis.pipeline(transaction=False) as pipe:  # both marked in bucket 0
        reader.mark_done(pipe, [before.id, late.id])
        await pipe.execute()
    clock["now"] = made_late + 1.0
    # An event made before this bucket began is looked up in the one before too; one made
    # after cannot have been marked there, so that set is not read for it (a marker that
    # could not exist, planted here to show it).
    assert await reader.already_done([before, late]) == [True, False]
    clock["now"] = base + 999.0
    assert await reader.already_done([before, late]) == [True, True]


async def test_a_handled_event_reclaimed_from_a_dead_consumer_is_skipped(
    real_redis: Redis, stream: str
) -> None:
    once = event(1)
    bus = EventBus(real_redis)
    await bus.publish_many(stream, [once, once])  # the same event twice
    handler = Recorder()
    reader = consumer(real_redis, stream, handler, name="alive", block_ms=50, claim_idle_ms=50)
    await reader.ensure_group()
    # one copy is stuck with a dead consumer, the other is handled normally
    await real_redis.xreadgroup(GROUP, "ghost", {stream: ">"}, count=1)
    await reader.run_once()
    assert handler.ids == [once.id]

    async def drained() -> bool:
        await reader.run_once()
        return await pending(real_redis, stream) == 0

    await eventually(drained)
    assert handler.ids == [once.id]  # reclaimed, recognised, acked, not handled again


async def test_each_group_handles_an_event_once(real_redis: Redis, stream: str) -> None:
    await EventBus(real_redis).publish(stream, event(1))
    first, second = Recorder(), Recorder()
    for group, handler in (("notify", first), ("chat", second)):
        reader = Consumer(
            real_redis, stream=stream, group=group, consumer="c", handler=handler, block_ms=50
        )
        await reader.ensure_group()
        await reader.run_once()
        await reader.run_once()
    assert len(first.seen) == len(second.seen) == 1


async def test_the_consumer_recovers_when_its_group_disappears(
    any_redis: Redis, stream: str
) -> None:
    bus = EventBus(any_redis)
    handler = Recorder()
    reader = consumer(any_redis, stream, handler, block_ms=50, claim_idle_ms=50)
    await reader.ensure_group()
    await bus.publish(stream, event(1))
    await reader.run_once()

    await any_redis.xgroup_destroy(stream, GROUP)  # e.g. Redis restarted without its data
    await bus.publish(stream, event(2))

    async def caught_up() -> bool:
        await reader.run_once()
        return len(handler.seen) == 2

    await eventually(caught_up)
    # the recreated group re-reads the stream from the start; event 1 is not handled again
    assert [e.data["n"] for e in handler.seen] == [1, 2]


@pytest.mark.parametrize("lose", ["group", "stream"])
async def test_a_reclaim_pass_recovers_from_nogroup(
    any_redis: Redis, stream: str, lose: str
) -> None:
    handler = Recorder()
    reader = consumer(any_redis, stream, handler, block_ms=50, claim_idle_ms=50)
    await reader.ensure_group()
    if lose == "group":
        await any_redis.xgroup_destroy(stream, GROUP)
    else:
        await any_redis.delete(stream)
    reader._last_claim = 0.0  # XAUTOCLAIM runs first and meets NOGROUP
    assert await reader.run_once() == 0
    await EventBus(any_redis).publish(stream, event(1))
    await reader.run_once()
    assert len(handler.seen) == 1


async def test_every_key_the_bus_writes_is_in_the_stream_namespace(
    real_redis: Redis, stream: str, prefix: str
) -> None:
    def poison(envelope: Envelope) -> BaseException | None:
        return RuntimeError("no") if envelope.type == "poison" else None

    await EventBus(real_redis).publish_many(stream, [event(1), event(2, "poison")])
    await real_redis.xadd(stream, {"event": "garbage"})
    reader = consumer(real_redis, stream, Recorder(fail=poison), block_ms=50, max_attempts=2)
    await reader.ensure_group()
    await reader.run_once()
    keys = [k async for k in real_redis.scan_iter(match=f"{prefix}*", count=1000)]
    assert stream in keys and dead_letter_stream(stream) in keys
    assert any(":done:" in k for k in keys) and any(":attempts:" in k for k in keys)
    stray = [k async for k in real_redis.scan_iter(match=f"*{GROUP}*", count=1000)]
    assert all(k.startswith(prefix) for k in stray)


async def test_the_run_loop_survives_the_stream_being_deleted(
    any_redis: Redis, stream: str
) -> None:
    bus = EventBus(any_redis)
    handler = Recorder()
    reader = consumer(any_redis, stream, handler, block_ms=50, claim_idle_ms=50)
    task = asyncio.create_task(reader.run())
    await bus.publish(stream, event(1))

    async def seen(n: int) -> bool:
        return len(handler.seen) == n

    await eventually(lambda: seen(1))
    await any_redis.delete(stream)  # stream and group gone
    await asyncio.sleep(0.1)
    await bus.publish(stream, event(2))
    await eventually(lambda: seen(2))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_event_schemas_round_trip_in_camel_case(real_redis: Redis, stream: str) -> None:
    applied = BoardApplied(
        board_id=3,
        board_title="morning run",
        room_id="r-1",
        writer=UserRef(id=1, username="happydaddy"),
        applicant=UserRef(id=2, username="angrydaddy"),
    )
    envelope = applied.envelope()
    wire = envelope.to_json()
    assert '"occurredAt"' in wire and '"boardTitle"' in wire
    await EventBus(real_redis).publish(stream, envelope)
    handler = Recorder()
    reader = consumer(real_redis, stream, handler, block_ms=50)
    await reader.ensure_group()
    await reader.run_once()
    (received,) = handler.seen
    assert received.type == "board.applied" and received.version == 1
    assert BoardApplied.parse(received) == applied


async def test_a_restarted_consumer_handles_its_own_pending_entries_at_once(
    any_redis: Redis, stream: str
) -> None:
    # The instance read two entries and died before acking them; it comes back under the same
    # name. XAUTOCLAIM would wait for claim_idle_ms (30 s here); its own pending list does not.
    await EventBus(any_redis).publish_many(stream, [event(n) for n in range(3)])
    await consumer(any_redis, stream, Recorder()).ensure_group()
    await any_redis.xreadgroup(GROUP, "notify-a", {stream: ">"}, count=2)
    handler = Recorder()
    restarted = consumer(any_redis, stream, handler, name="notify-a", block_ms=50)
    restarted._last_claim = time.monotonic()  # no reclaim pass could take them
    assert await restarted.recover() == 2
    assert await restarted.run_once() == 1
    assert [e.data["n"] for e in handler.seen] == [0, 1, 2]
    assert await pending(any_redis, stream) == 0


async def test_the_own_pending_pass_runs_once_and_leaves_failures_to_the_retries(
    any_redis: Redis, stream: str
) -> None:
    def poison(envelope: Envelope) -> BaseException | None:
        return RuntimeError("no") if envelope.type == "poison" else None

    await EventBus(any_redis).publish_many(stream, [event(0, "poison"), event(1)])
    await consumer(any_redis, stream, Recorder()).ensure_group()
    await any_redis.xreadgroup(GROUP, "same", {stream: ">"}, count=2)
    handler = Recorder(fail=poison)
    restarted = consumer(any_redis, stream, handler, name="same", block_ms=50)
    restarted._last_claim = time.monotonic()
    await restarted.recover()
    await restarted.run_once()
    assert handler.calls == 2  # the poison entry was tried once, not in a loop
    assert await pending(any_redis, stream) == 1


async def test_a_dead_letter_on_a_cluster_needs_no_transaction(
    cluster_redis: Redis, stream: str
) -> None:
    # The stream, its dead-letter stream and its attempts hash hash to different slots.
    slots = {
        int(await cluster_redis.execute_command("CLUSTER KEYSLOT", key))
        for key in (stream, dead_letter_stream(stream), f"{stream}:attempts:{GROUP}")
    }
    assert len(slots) == 3
    await cluster_redis.xadd(stream, {"event": "not json"})
    reader = consumer(cluster_redis, stream, Recorder(), block_ms=50)
    await reader.ensure_group()
    await reader.run_once()
    assert len(await dead_letters(cluster_redis, stream)) == 1
    assert await pending(cluster_redis, stream) == 0


async def test_the_run_loop_starts_with_its_own_pending_entries(
    any_redis: Redis, stream: str
) -> None:
    await EventBus(any_redis).publish(stream, event(1))
    await consumer(any_redis, stream, Recorder()).ensure_group()
    await any_redis.xreadgroup(GROUP, "back", {stream: ">"}, count=1)
    handler = Recorder()
    reader = consumer(any_redis, stream, handler, name="back", block_ms=50)
    task = asyncio.create_task(reader.run())
    try:

        async def handled() -> bool:
            return len(handler.seen) == 1

        await eventually(handled, timeout=2)  # claim_idle_ms is 30 s
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_dead_members_entries_are_taken_over_without_waiting_for_their_idle_time(
    any_redis: Redis, stream: str
) -> None:
    # An instance died with two entries read; it comes back under another name (a new task).
    await EventBus(any_redis).publish_many(stream, [event(n) for n in range(3)])
    await consumer(any_redis, stream, Recorder()).ensure_group()
    await any_redis.xreadgroup(GROUP, "old-task", {stream: ">"}, count=2)
    handler = Recorder()
    fresh = consumer(any_redis, stream, handler, name="new-task", block_ms=50, dead_after_ms=300)
    fresh._last_claim = time.monotonic()  # claim_idle_ms (30 s) is far away
    await fresh.run_once()  # the old task is not silent long enough yet
    assert [e.data["n"] for e in handler.seen] == [2]
    await asyncio.sleep(0.35)
    fresh._last_dead_check = 0.0
    await fresh.run_once()
    assert sorted(e.data["n"] for e in handler.seen) == [0, 1, 2]
    assert await pending(any_redis, stream) == 0


async def test_a_member_that_reads_is_never_taken_over(any_redis: Redis, stream: str) -> None:
    await consumer(any_redis, stream, Recorder()).ensure_group()
    await EventBus(any_redis).publish(stream, event(1))
    await any_redis.xreadgroup(GROUP, "busy", {stream: ">"}, count=1)
    other = consumer(any_redis, stream, Recorder(), name="other", block_ms=50, dead_after_ms=300)
    assert await other.take_over_dead() == 0
    assert await pending(any_redis, stream) == 1


async def publish_entry(redis: Redis, stream: str, events: list[Envelope]) -> None:
    """One stream entry holding ``events``, as chat's outbox relay appends a batch."""
    await redis.xadd(stream, entry_fields([e.to_json() for e in events]))  # type: ignore[arg-type]


async def test_an_entry_of_several_events_is_handled_in_order_and_acked_once(
    any_redis: Redis, stream: str
) -> None:
    batch = [event(i) for i in range(5)]
    await publish_entry(any_redis, stream, batch[:3])
    await publish_entry(any_redis, stream, batch[3:4])  # one event: the plain `event` field
    await publish_entry(any_redis, stream, batch[4:] + batch[:1])  # a repeat, in a later entry
    entries: Any = await any_redis.xrange(stream)
    assert [list(fields) for _, fields in entries] == [["events"], ["event"], ["events"]]
    assert await stream_events(any_redis, stream) == [*batch, batch[0]]

    handler = Recorder()
    reader = consumer(any_redis, stream, handler)
    await reader.ensure_group()
    assert await reader.run_once() == 3
    assert handler.seen == batch, "in order, and the repeated event once"
    assert await pending(any_redis, stream) == 0


async def test_a_failing_event_keeps_its_entry_pending_and_the_others_are_not_repeated(
    any_redis: Redis, stream: str
) -> None:
    bad = event(1, "poison")
    batch = [event(0), bad, event(2)]
    await publish_entry(any_redis, stream, batch)

    handler = Recorder(
        fail=lambda e: RuntimeError("cannot handle this") if e.type == "poison" else None
    )
    reader = consumer(any_redis, stream, handler, block_ms=50, claim_idle_ms=50, max_attempts=3)
    await reader.ensure_group()
    await reader.run_once()
    assert handler.seen == [batch[0], batch[2]], "the poison does not hold up the rest"
    assert await pending(any_redis, stream) == 1, "the entry waits for its retry"

    async def dead_lettered() -> bool:
        await reader.run_once()
        return bool(await any_redis.xlen(dead_letter_stream(stream)))

    await eventually(dead_lettered)
    (dead,) = await dead_letters(any_redis, stream)
    assert entry_envelopes(dead)[2] == batch, "the entry whole, under the field it came in"
    assert "RuntimeError: cannot handle this" in dead["reason"]
    assert handler.seen == [batch[0], batch[2]], "the good events ran once, not once per retry"
    assert handler.calls == 2 + 3
    assert await pending(any_redis, stream) == 0


async def test_an_unparseable_entry_of_several_events_is_dead_lettered(
    any_redis: Redis, stream: str
) -> None:
    await any_redis.xadd(stream, {"events": '[{"type": "x"}, 42]'})
    await EventBus(any_redis).publish(stream, event(9))
    handler = Recorder()
    reader = consumer(any_redis, stream, handler)
    await reader.ensure_group()
    await reader.run_once()
    assert [e.data for e in handler.seen] == [{"n": 9}]
    (dead,) = await dead_letters(any_redis, stream)
    assert dead["events"] == '[{"type": "x"}, 42]' and dead["reason"].startswith("unparseable")
    assert await pending(any_redis, stream) == 0


def test_an_entry_holds_one_event_plainly_and_a_batch_as_an_array() -> None:
    one, two = event(1), event(2)
    assert entry_fields([one.to_json()]) == {"event": one.to_json()}
    fields = entry_fields([one.to_json(), two.to_json()])
    assert entry_envelopes(fields) == ("events", fields["events"], [one, two])
    with pytest.raises(ValueError):
        entry_envelopes({"events": "[]"})
    assert EVENTS_PER_ENTRY <= 100, "a read of 100 entries stays a bounded batch"
