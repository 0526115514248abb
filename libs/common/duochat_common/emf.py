"""A few gauges as CloudWatch metrics, with no agent: once a minute, one JSON log line in the
embedded metric format (EMF), which the tasks' awslogs driver ships and CloudWatch turns into
metrics. On AWS the stack sets ``DUOCHAT_METRICS_NAMESPACE`` and ``DUOCHAT_METRICS_ENVIRONMENT``;
elsewhere the reporter is off. The CDK app scales chat and notify on ``duochat_connections``
and alarms on ``duochat_events_lag``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TextIO

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

if TYPE_CHECKING:
    from duochat_common.settings import ServiceSettings

log = logging.getLogger(__name__)
Gauge = Callable[[], float | int | Awaitable[float | int]]


def emf_line(
    *, namespace: str, environment: str, service: str, values: dict[str, float | int]
) -> str:
    """One EMF document: the values, with the Environment and Service dimensions."""
    return json.dumps(
        {
            "_aws": {
                "Timestamp": int(time.time() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": namespace,
                        "Dimensions": [["Environment", "Service"]],
                        "Metrics": [{"Name": name, "Unit": "Count"} for name in values],
                    }
                ],
            },
            "Environment": environment,
            "Service": service,
            **values,
        },
        separators=(",", ":"),
    )


async def group_lag(redis: aioredis.Redis, stream: str, group: str) -> int:
    """Entries of ``stream`` that ``group`` has not read yet (XINFO GROUPS' lag)."""
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError:  # no stream yet
        return 0
    for info in groups:
        if info.get("name") == group:
            return int(info.get("lag") or 0)
    return 0


class EmfReporter:
    def __init__(
        self,
        *,
        namespace: str,
        environment: str,
        service: str,
        gauges: dict[str, Gauge],
        interval_s: float = 60.0,
        out: TextIO | None = None,
    ) -> None:
        self.namespace = namespace
        self.environment = environment
        self.service = service
        self.gauges = gauges
        self.interval_s = interval_s
        self.out = out or sys.stdout

    async def report(self) -> str:
        values: dict[str, float | int] = {}
        for name, gauge in self.gauges.items():
            try:
                value = gauge()
                values[name] = await value if inspect.isawaitable(value) else value
            except (RedisError, OSError):
                log.warning("metric %s not read (redis unavailable)", name)
        line = emf_line(
            namespace=self.namespace,
            environment=self.environment,
            service=self.service,
            values=values,
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
    settings: ServiceSettings, service: str, gauges: dict[str, Gauge]
) -> EmfReporter | None:
    """The service's reporter, or None when metrics are off (no namespace set)."""
    if not settings.metrics_namespace:
        return None
    return EmfReporter(
        namespace=settings.metrics_namespace,
        environment=settings.metrics_environment or settings.environment,
        service=service,
        gauges=gauges,
    )
