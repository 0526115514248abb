"""The services' Prometheus metrics as CloudWatch metrics, with no agent: once a minute, one JSON
log line in the embedded metric format (EMF), which the task's awslogs driver ships and
CloudWatch turns into metrics. On AWS the stack sets ``DUOCHAT_METRICS_NAMESPACE`` and
``DUOCHAT_METRICS_ENVIRONMENT``; elsewhere the reporter is off.

The values come from the same registry ``/metrics`` serves, so there is one definition of each
metric. Only the names in ``exported`` go out (CloudWatch bills per metric), with the dimensions
``Environment`` and ``Service``; label sets are folded: a gauge reports its highest value (the
most lagging consumer group), a counter the sum of its increase over the minute, a histogram its
observations of the minute as ``Values``/``Counts`` (the middle of each bucket), from which
CloudWatch computes percentiles such as the send-to-deliver p99. (The collector's ``awsemf``
exporter sends a Prometheus histogram as a statistic set, which has no percentiles: that is why
the process writes these lines itself, and the ADOT collector beside it carries only traces.)
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TextIO

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from redis.exceptions import RedisError

if TYPE_CHECKING:
    from duochat_common.metrics import Metrics
    from duochat_common.settings import ServiceSettings

log = logging.getLogger(__name__)

# Every service: how late its event loop runs, and its consumers (chat's and notify's).
COMMON_EXPORTS = (
    "duochat_event_loop_lag_seconds",
    "duochat_events_lag",
    "duochat_events_dead_lettered",
)
MAX_VALUES = 100  # an EMF metric carries at most 100 values


def _unit(family: Metric) -> str:
    return "Seconds" if family.name.endswith("_seconds") else "Count"


class EmfReporter:
    """Turns the registries' exported families into one EMF document per report."""

    def __init__(
        self,
        *,
        namespace: str,
        environment: str,
        service: str,
        metrics: Metrics,
        registries: Iterable[CollectorRegistry] = (),
        exported: Iterable[str] = COMMON_EXPORTS,
        interval_s: float = 60.0,
        out: TextIO | None = None,
    ) -> None:
        self.namespace = namespace
        self.environment = environment
        self.service = service
        self.metrics = metrics
        self.registries = [metrics.registry, *registries]
        self.exported = set(exported)
        self.interval_s = interval_s
        self.out = out or sys.stdout
        # Cumulative values at the last report: counters and histogram buckets go out as deltas.
        self._last: dict[tuple[str, ...], float] = {}

    def export(self, *names: str) -> None:
        self.exported.update(names)

    def _families(self) -> list[Metric]:
        return [
            family
            for registry in self.registries
            for family in registry.collect()
            if family.name in self.exported
        ]

    def _delta(self, key: tuple[str, ...], value: float) -> float:
        last = self._last.get(key, 0.0)
        self._last[key] = value
        return value - last if value >= last else value  # a reset starts from 0 again

    def _histogram(self, family: Metric) -> dict[str, Any] | None:
        buckets: dict[float, float] = {}
        total_sum = 0.0
        for sample in family.samples:
            labels = tuple(f"{k}={v}" for k, v in sorted(sample.labels.items()) if k != "le")
            if sample.name.endswith("_bucket"):
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
            elif sample.name.endswith("_sum"):
                total_sum += self._delta((family.name, "sum", *labels), sample.value)
        # Cumulative bucket counts -> observations per bucket over the last interval.
        values: list[float] = []
        counts: list[float] = []
        lower, below = 0.0, 0.0
        finite = [b for b in sorted(buckets) if b != float("inf")]
        for bound in sorted(buckets):
            in_bucket = buckets[bound] - below
            below = buckets[bound]
            upper = bound if bound != float("inf") else (finite[-1] if finite else 0.0)
            count = self._delta((family.name, "bucket", repr(bound)), in_bucket)
            if count > 0:
                values.append(round((lower + upper) / 2, 6))
                counts.append(count)
            lower = upper
        if not counts:
            return None
        return {
            "Values": values[:MAX_VALUES],
            "Counts": counts[:MAX_VALUES],
            "Min": min(values),
            "Max": max(values),
            "Count": sum(counts),
            "Sum": max(total_sum, 0.0),
        }

    def values(self) -> dict[str, tuple[Any, str]]:
        """Each exported metric's value for this report, and its unit."""
        out: dict[str, tuple[Any, str]] = {}
        for family in self._families():
            if family.type == "histogram":
                value = self._histogram(family)
                if value is not None:
                    out[family.name] = (value, _unit(family))
            elif family.type == "counter":
                total = sum(s.value for s in family.samples if s.name.endswith("_total"))
                out[family.name] = (self._delta((family.name,), total), "Count")
            elif family.samples:
                out[family.name] = (max(s.value for s in family.samples), _unit(family))
        return out

    async def report(self) -> str:
        try:
            await self.metrics.refresh()
        except (RedisError, OSError):
            log.warning("metrics not refreshed (redis unavailable)")
        values = self.values()
        line = json.dumps(
            {
                "_aws": {
                    "Timestamp": int(time.time() * 1000),
                    "CloudWatchMetrics": [
                        {
                            "Namespace": self.namespace,
                            "Dimensions": [["Environment", "Service"]],
                            "Metrics": [
                                {"Name": name, "Unit": unit} for name, (_, unit) in values.items()
                            ],
                        }
                    ],
                },
                "Environment": self.environment,
                "Service": self.service,
                **{name: value for name, (value, _) in values.items()},
            },
            separators=(",", ":"),
        )
        self.out.write(line + "\n")
        self.out.flush()
        return line

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.report()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("metrics report failed", exc_info=True)


def reporter(
    settings: ServiceSettings,
    service: str,
    metrics: Metrics,
    registries: Iterable[CollectorRegistry] = (),
) -> EmfReporter | None:
    """The service's reporter, or None when CloudWatch metrics are off (no namespace set)."""
    if not settings.metrics_namespace:
        return None
    return EmfReporter(
        namespace=settings.metrics_namespace,
        environment=settings.metrics_environment or settings.environment,
        service=service,
        metrics=metrics,
        registries=registries,
    )
