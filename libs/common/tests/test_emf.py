"""CloudWatch metrics as EMF log lines, read from the same registry as /metrics: the document
CloudWatch expects, counters as increases, histograms as values and counts (percentiles)."""

from __future__ import annotations

import io
import json
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from duochat_common.emf import EmfReporter, reporter
from duochat_common.metrics import Metrics
from duochat_common.settings import ServiceSettings


def _reporter(metrics: Metrics, out: io.StringIO, *names: str) -> EmfReporter:
    return EmfReporter(
        namespace="Duochat",
        environment="dev",
        service="chat",
        metrics=metrics,
        exported=names,
        out=out,
    )


def _last(out: io.StringIO) -> dict[str, Any]:
    return dict(json.loads(out.getvalue().splitlines()[-1]))


async def test_a_report_is_one_emf_document_with_the_exported_metrics() -> None:
    metrics = Metrics()
    lag = Gauge("duochat_events_lag", "lag", ["stream", "group"], registry=metrics.registry)
    lag.labels("events.boards", "chat").set(3)
    lag.labels("events.chat", "notify").set(7)
    Gauge("not_exported", "x", registry=metrics.registry).set(1)
    refreshed = []

    async def refresh() -> None:
        refreshed.append(True)

    metrics.before_scrape(refresh)
    out = io.StringIO()
    await _reporter(metrics, out, "duochat_events_lag").report()
    doc = _last(out)
    (directive,) = doc["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "Duochat"
    assert directive["Dimensions"] == [["Environment", "Service"]]
    assert directive["Metrics"] == [{"Name": "duochat_events_lag", "Unit": "Count"}]
    assert (doc["Environment"], doc["Service"]) == ("dev", "chat")
    assert doc["duochat_events_lag"] == 7  # the most lagging group
    assert "not_exported" not in doc
    assert refreshed == [True]  # the lag was read from Redis first
    assert isinstance(doc["_aws"]["Timestamp"], int)


async def test_counters_report_their_increase_since_the_last_report() -> None:
    metrics = Metrics()
    stored = Counter("duochat_chat_messages_stored", "x", ["kind"], registry=metrics.registry)
    out = io.StringIO()
    emf = _reporter(metrics, out, "duochat_chat_messages_stored")
    stored.labels("a").inc(5)
    stored.labels("b").inc(2)
    await emf.report()
    assert _last(out)["duochat_chat_messages_stored"] == 7
    stored.labels("a").inc(3)
    await emf.report()
    assert _last(out)["duochat_chat_messages_stored"] == 3
    await emf.report()
    assert _last(out)["duochat_chat_messages_stored"] == 0


async def test_histograms_report_the_minutes_observations_as_values_and_counts() -> None:
    metrics = Metrics()
    seconds = Histogram(
        "duochat_chat_send_to_deliver_seconds",
        "x",
        ["hop"],
        buckets=(0.01, 0.1, 1.0),
        registry=metrics.registry,
    )
    out = io.StringIO()
    emf = _reporter(metrics, out, "duochat_chat_send_to_deliver_seconds")
    for value in (0.005, 0.005, 0.05):
        seconds.labels("owner").observe(value)
    seconds.labels("stream").observe(5.0)  # above the last bucket
    await emf.report()
    doc = _last(out)
    assert doc["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [
        {"Name": "duochat_chat_send_to_deliver_seconds", "Unit": "Seconds"}
    ]
    value = doc["duochat_chat_send_to_deliver_seconds"]
    # Middles of (0, 0.01], (0.01, 0.1], and the last bound for what lies above it.
    assert value["Values"] == [0.005, 0.055, 1.0]
    assert value["Counts"] == [2, 1, 1]
    assert value["Count"] == 4 and abs(value["Sum"] - 5.06) < 1e-9
    assert (value["Min"], value["Max"]) == (0.005, 1.0)

    seconds.labels("owner").observe(0.5)
    await emf.report()
    value = _last(out)["duochat_chat_send_to_deliver_seconds"]
    assert (value["Values"], value["Counts"]) == ([0.55], [1])
    await emf.report()
    assert "duochat_chat_send_to_deliver_seconds" not in _last(out)  # nothing observed


def test_cloudwatch_metrics_are_off_without_a_namespace() -> None:
    assert reporter(ServiceSettings(), "chat", Metrics()) is None
    on = reporter(ServiceSettings(metrics_namespace="Duochat"), "chat", Metrics())
    assert on is not None and on.environment == "development"
