"""What event consumers report: entries taken and dead-lettered, and the group's lag and pending
entries read from Redis at scrape time, on one Redis and on the cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from duochat_common.events import Consumer, Envelope, EventBus
from duochat_common.events.bus import FIELD
from duochat_common.events.metrics import BusMetrics, group_info
from duochat_common.metrics import Metrics
from duochat_common.redis_store import create_redis
from duochat_common.testing import redis_shape_url, unique_prefix


@pytest.fixture(params=["redis", "cluster"])
async def redis(request: pytest.FixtureRequest) -> AsyncIterator[Redis]:
    found = redis_shape_url(request.param)
    assert found is not None, f"no {request.param} to test against"
    client = create_redis(found[0], cluster=found[1])
    yield client
    await client.aclose()


def scraped(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_a_consumer_counts_what_it_takes_and_dead_letters(redis: Redis) -> None:
    prefix = unique_prefix()
    stream = f"{prefix}events.test"
    metrics = Metrics()
    bus_metrics = BusMetrics(metrics)

    async def fail_on_poison(envelope: Envelope) -> None:
        if envelope.type == "poison":
            raise ValueError("never works")

    consumer = Consumer(
        redis,
        stream=stream,
        group="g",
        consumer="c1",
        handler=fail_on_poison,
        block_ms=100,
        claim_idle_ms=0,
        max_attempts=1,
        metrics=bus_metrics,
    )
    labels = (("group", "g"), ("stream", stream))
    try:
        await consumer.ensure_group()
        await EventBus(redis).publish_many(
            stream, [Envelope(type="ok", data={"n": n}) for n in range(4)]
        )
        await redis.xadd(stream, {FIELD: "not json"})
        await EventBus(redis).publish(stream, Envelope(type="poison", data={}))
        await metrics.refresh()
        before = scraped(metrics)
        assert before[("duochat_events_lag", labels)] == 6
        assert before[("duochat_events_consumed_total", labels)] == 0
        await consumer.run_once()
        await metrics.refresh()
        after = scraped(metrics)
        assert after[("duochat_events_consumed_total", labels)] == 6
        assert after[("duochat_events_dead_lettered_total", labels)] == 2
        assert after[("duochat_events_lag", labels)] == 0
        assert after[("duochat_events_pending", labels)] == 0
        assert await bus_metrics.lag_of(stream, "g") == 0
    finally:
        keys = [k async for k in redis.scan_iter(match=f"{prefix}*", count=1000)]
        for key in keys:
            await redis.delete(key)


async def test_a_group_that_does_not_exist_yet_lags_by_nothing(redis: Redis) -> None:
    assert await group_info(redis, f"{unique_prefix()}events.none", "g") == (0, 0)
