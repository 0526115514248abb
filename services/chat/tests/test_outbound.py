"""The outbound queue on a real Redis: appends in order, and an instance's streams get their
expiry on their first append and then once a minute, not with every flush."""

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
    stream = f"test:outbound:{uuid.uuid4().hex}"
    queue = Outbound(away)
    try:
        queue.put(Append(stream, {"n": 1}, expire_ms=60_000))
        with pytest.raises((RedisError, OSError)):
            await queue._flush()
        assert queue.pending() == 1  # kept, in order, for the retry
        queue.redis = redis
        await _flushed(queue)
        assert 0 < await redis.pttl(stream) <= 60_000
        assert [f["n"] for _, f in await redis.xrange(stream)] == ["1"]
    finally:
        await redis.delete(stream)
        await asyncio.gather(redis.aclose(), away.aclose())
