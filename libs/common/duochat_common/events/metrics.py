"""What every event consumer reports, by stream and consumer group.

- ``duochat_events_consumed_total``: entries a consumer took from its stream (new, reclaimed
  from a dead member, or its own after a restart);
- ``duochat_events_dead_lettered_total``: entries moved to ``<stream>.dead``;
- ``duochat_events_lag``: entries the group has not read yet (XINFO GROUPS' ``lag``), and
  ``duochat_events_pending``: entries read and not acknowledged yet. Both are read from Redis
  when Prometheus scrapes, not polled.

A healthy group has a lag that returns to 0 within a second of a burst; a lag that only grows
means its consumers cannot keep up (or are down), and every alarm or SYSTEM line they make is
that late.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from prometheus_client import Counter, Gauge
from redis.exceptions import ResponseError

from duochat_common.metrics import Metrics


async def group_info(redis: aioredis.Redis, stream: str, group: str) -> tuple[int, int]:
    """(lag, pending) of ``group`` on ``stream``: (0, 0) while neither exists."""
    try:
        groups: Any = await redis.xinfo_groups(stream)
    except ResponseError:  # no stream yet
        return 0, 0
    for info in groups:
        if str(info.get("name")) == group:
            return int(info.get("lag") or 0), int(info.get("pending") or 0)
    return 0, 0


class BusMetrics:
    """One app's consumer metrics; each ``Consumer`` given it counts itself in."""

    def __init__(self, metrics: Metrics) -> None:
        registry = metrics.registry
        labels = ["stream", "group"]
        self.consumed = Counter(
            "duochat_events_consumed",
            "Entries taken from the stream by this consumer (new, reclaimed or recovered)",
            labels,
            registry=registry,
        )
        self.dead_lettered = Counter(
            "duochat_events_dead_lettered",
            "Entries that kept failing (or could not be parsed), moved to <stream>.dead",
            labels,
            registry=registry,
        )
        self.lag = Gauge(
            "duochat_events_lag",
            "Entries of the stream the group has not read yet (XINFO GROUPS lag)",
            labels,
            registry=registry,
        )
        self.pending = Gauge(
            "duochat_events_pending",
            "Entries the group has read and not acknowledged yet",
            labels,
            registry=registry,
        )
        self._groups: dict[tuple[str, str], aioredis.Redis] = {}
        metrics.before_scrape(self.refresh)

    def watch(self, redis: aioredis.Redis, stream: str, group: str) -> None:
        """Read this group's lag before each scrape; start its counters at 0."""
        self._groups[(stream, group)] = redis
        self.consumed.labels(stream, group)
        self.dead_lettered.labels(stream, group)

    async def refresh(self) -> None:
        for (stream, group), redis in list(self._groups.items()):
            lag, pending = await group_info(redis, stream, group)
            self.lag.labels(stream, group).set(lag)
            self.pending.labels(stream, group).set(pending)

    async def lag_of(self, stream: str, group: str) -> int:
        """The group's lag now (read from Redis)."""
        redis = self._groups[(stream, group)]
        return (await group_info(redis, stream, group))[0]
