"""notify's own metrics.

- ``duochat_notify_streams``: SSE streams open on this instance;
- ``duochat_notify_events_total``: events appended to users' streams (each reaches every open
  tab of its user), by kind: ``message``, ``applied``, ``matched``, ``rejected``, ``read``;
- ``duochat_notify_delivery_seconds``: from what an alarm tells of (a message stored, a board
  decided) to the alarm on its user's stream, live on every open tab. It includes the time the
  event waited in Redis for notify (``duochat_events_lag``), and the presence hold of an alarm
  whose recipient's presence chat could not read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from prometheus_client import Counter, Histogram

from duochat_common.metrics import LATENCY_BUCKETS, Metrics, Read, Readings

KINDS = ("message", "applied", "matched", "rejected", "read")
CLOUDWATCH = ("duochat_notify_streams", "duochat_notify_events", "duochat_notify_delivery_seconds")


class NotifyMetrics:
    def __init__(self, metrics: Metrics, streams: Callable[[], int | None]) -> None:
        registry = metrics.registry
        self.events = Counter(
            "duochat_notify_events",
            "Events appended to users' SSE streams, by kind",
            ["kind"],
            registry=registry,
        )
        for kind in KINDS:
            self.events.labels(kind)
        self.delivery = Histogram(
            "duochat_notify_delivery_seconds",
            "From the event an alarm tells of to the alarm on its user's stream",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._streams = streams
        registry.register(Readings(self._readings))

    def _readings(self) -> Iterable[Read]:
        streams = self._streams()
        if streams is not None:
            yield Read(
                "duochat_notify_streams", "SSE streams open on this instance", lambda: streams
            )

    def pushed(self, kind: str, occurred: datetime | None) -> None:
        """One event appended to a user's stream (``occurred``: naive UTC, as alarms keep it)."""
        self.events.labels(kind).inc()
        if occurred is not None:
            now = datetime.now(UTC).replace(tzinfo=None)
            self.delivery.observe(max(0.0, (now - occurred).total_seconds()))
