"""The outbound queue on a real Redis: appends in order, an instance's streams get their
expiry on their first append and then once a minute, not with every flush, and events ride
with a conversation's appends without holding them up."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from duochat_chat.outbound import Append, Outbound
from duochat_common.testing import REDIS_URL


async def _flushed(queue: Outbound, *items: Append) -> None:
    for item in items:
        queue.put(item)
    runner = asyncio.create_task(queue.run())
    try:
        assert await queue.flushed(5.0)
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


async def test_a_stream_gets_its_expiry_once_and_again_after_the_renewal_interval() -> None:
    redis = aioredis.from_url(REDIS_URL, decode_responses=True)
    stream = f"test:outbound:{uuid.uuid4().hex}"
    queue = Outbound(redis)
    try:
        await _flushed(queue, Append(stream, {"n": 1}, expire_ms=60_000))
        assert 0 < await redis.pttl(stream) <= 60_000
        # Within the interval a flush sends no PEXPIRE: a TTL taken away stays away.
        await redis.persist(stream)
        await _flushed(queue, Append(stream, {"n": 2}, expire_ms=60_000))
        assert await redis.pttl(stream) == -1
        # Once the interval has passed, the next flush renews it.
        queue.expiries.every_s = 0.0
        await _flushed(queue, Append(stream, {"n": 3}, expire_ms=60_000))
        assert 0 < await redis.pttl(stream) <= 60_000
        entries: Any = await redis.xrange(stream)
        assert [fields["n"] for _, fields in entries] == ["1", "2", "3"]
    finally:
        await redis.delete(stream)
        await redis.aclose()


async def test_a_flush_that_failed_sets_the_expiry_on_its_retry() -> None:
    """The append that was to set a stream's expiry did not reach Redis (it was away, and may
    come back empty): the retry sets it, instead of a minute later."""
    redis = aioredis.from_url(REDIS_URL, decode_responses=True)
    away = aioredis.from_url("redis://127.0.0.1:1", decode_responses=True)  # nothing listens
    stream, events = (f"test:outbound:{uuid.uuid4().hex}" for _ in range(2))
    queue = Outbound(away)
    try:
        queue.put(Append(stream, {"n": 1}, expire_ms=60_000))
        queue.put(Append(events, {"e": 1}, bulk=True))
        with pytest.raises((RedisError, OSError)):
            await queue._flush()
        assert queue.pending() == 2  # kept, in order, for the retry
        queue.redis = redis
        await _flushed(queue)
        assert 0 < await redis.pttl(stream) <= 60_000
        assert [f["n"] for _, f in await redis.xrange(stream)] == ["1"]
        assert [f["e"] for _, f in await redis.xrange(events)] == ["1"]
    finally:
        await redis.delete(stream, events)
        await asyncio.gather(redis.aclose(), away.aclose())


async def test_events_ride_with_a_conversations_appends_in_one_round_trip() -> None:
    """The writer's batch makes a delivery and an event entry: they leave together."""
    redis = aioredis.from_url(REDIS_URL, decode_responses=True)
    deliver, events = (f"test:outbound:{uuid.uuid4().hex}" for _ in range(2))
    queue = Outbound(redis)
    round_trips = 0
    pipeline = redis.pipeline

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal round_trips
        round_trips += 1
        return pipeline(*args, **kwargs)

    redis.pipeline = counted  # type: ignore[method-assign]
    done: list[str] = []
    try:
        queue.put(Append(deliver, {"n": 1}))
        queue.put(Append(events, {"e": 1}, bulk=True, on_done=lambda: done.append("e")))
        await queue._flush()
        assert round_trips == 1
        assert done == ["e"]
        assert [f["n"] for _, f in await redis.xrange(deliver)] == ["1"]
        assert [f["e"] for _, f in await redis.xrange(events)] == ["1"]
    finally:
        await redis.delete(deliver, events)
        await redis.aclose()


async def test_a_backlog_of_events_holds_a_conversation_for_one_bounded_round_trip() -> None:
    redis = aioredis.from_url(REDIS_URL, decode_responses=True)
    deliver, events = (f"test:outbound:{uuid.uuid4().hex}" for _ in range(2))
    queue = Outbound(redis, riders=4, bulk_batch=50)
    try:
        for n in range(200):
            queue.put(Append(events, {"e": n}, bulk=True))
        queue.put(Append(deliver, {"n": 1}))
        # The conversation's append goes first, with at most four events riding along ...
        take, riding = queue._take()
        assert [item.stream for item in take] == [deliver]
        assert [item.fields["e"] for item in riding] == [0, 1, 2, 3]
        # ... and with nothing else waiting, the events leave in bounded runs, in order.
        take, riding = queue._take()
        assert take == []
        assert [item.fields["e"] for item in riding] == list(range(4, 54))
        queue.put(Append(deliver, {"n": 2}))
        take, riding = queue._take()
        assert [item.fields["n"] for item in take] == [2]
        assert len(riding) == 4
        # A backlog of events is never shed, whatever the conversation's backlog limit.
        queue.max_backlog = 1
        queue.put(Append(deliver, {"n": 3}))
        queue.put(Append(deliver, {"n": 4}))
        assert queue.pending() == 1 + (200 - 58)  # one delivery shed, no event
        await _flushed(queue)
        assert [f["n"] for _, f in await redis.xrange(deliver)] == ["4"]
        assert [int(f["e"]) for _, f in await redis.xrange(events)] == list(range(58, 200))
    finally:
        await redis.delete(deliver, events)
        await redis.aclose()
