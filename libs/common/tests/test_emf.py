"""CloudWatch metrics as EMF log lines: the document CloudWatch expects, and a consumer
group's lag read from Redis."""

from __future__ import annotations

import io
import json

import redis.asyncio as aioredis

from duochat_common.emf import EmfReporter, group_lag, reporter
from duochat_common.settings import ServiceSettings
from duochat_common.testing import REDIS_URL, unique_prefix


async def test_a_report_is_one_emf_document_per_line() -> None:
    out = io.StringIO()

    async def lag() -> int:
        return 7

    emf = EmfReporter(
        namespace="Duochat",
        environment="dev",
        service="chat",
        gauges={"duochat_connections": lambda: 42, "duochat_events_lag": lag},
        out=out,
    )
    await emf.report()
    doc = json.loads(out.getvalue().splitlines()[0])
    (directive,) = doc["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "Duochat"
    assert directive["Dimensions"] == [["Environment", "Service"]]
    assert {m["Name"] for m in directive["Metrics"]} == {
        "duochat_connections",
        "duochat_events_lag",
    }
    assert (doc["Environment"], doc["Service"]) == ("dev", "chat")
    assert (doc["duochat_connections"], doc["duochat_events_lag"]) == (42, 7)
    assert isinstance(doc["_aws"]["Timestamp"], int)


def test_metrics_are_off_without_a_namespace() -> None:
    assert reporter(ServiceSettings(), "chat", {}) is None
    on = reporter(ServiceSettings(metrics_namespace="Duochat"), "chat", {})
    assert on is not None and on.environment == "development"


async def test_group_lag_counts_what_the_group_has_not_read() -> None:
    redis = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    stream = f"{unique_prefix()}events.test"
    try:
        assert await group_lag(redis, stream, "g") == 0  # no stream yet
        for i in range(3):
            await redis.xadd(stream, {"event": str(i)})
        await redis.xgroup_create(stream, "g", id="0")
        assert await group_lag(redis, stream, "g") == 3
        await redis.xreadgroup("g", "c", {stream: ">"}, count=1)
        assert await group_lag(redis, stream, "g") == 2
    finally:
        await redis.delete(stream)
        await redis.aclose()
