"""Prometheus metrics: one registry per app, served at ``GET /metrics`` on the service's own port.

Each app (``build_app``) owns a ``Metrics``: its registry (the HTTP histogram, and whatever the
service adds in its own ``metrics.py``) and the readings that need I/O (a consumer group's lag
from Redis), which run just before a scrape, so nothing polls between scrapes. Counters that a
hot path already keeps as plain integers (chat's stored and delivered messages) are read at
scrape time through a ``Readings`` collector: a scrape costs a few attribute reads, a message
costs nothing.

``/metrics`` is never routed by the gateway or the ALB: the route table has no rule for it, and
the gateways answer it 404 (``routing.INTERNAL_PATHS``). Prometheus scrapes each task directly.

The embedded mode serves the registries of all four apps on its one port, each sample labelled
with its ``service`` (``labelled``); elsewhere the scrape config adds that label per target.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from duochat_common.process_metrics import process_registry

log = logging.getLogger(__name__)
# The ``*_created`` series (when each series began) double the exposition and nothing reads them.
disable_created_metrics()

# Seconds: from a fraction of a millisecond (a commit, a local delivery) to ten seconds.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SCRAPE_TIMEOUT_S = 2.0
UNMATCHED = "unmatched"  # a path no route matched: one label value, whatever was asked

Refresh = Callable[[], Awaitable[None]]
Reading = Callable[[], float | int]


class Metrics:
    """One app's registry, and the readings to refresh before each scrape."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._refreshers: list[Refresh] = []
        self.http_duration = Histogram(
            "http_server_request_duration_seconds",
            "HTTP requests served, by method, route template and status (an SSE request lasts "
            "as long as its stream)",
            ["method", "route", "status"],
            buckets=HTTP_BUCKETS,
            registry=self.registry,
        )

    def before_scrape(self, refresh: Refresh) -> None:
        """Run ``refresh`` (bounded by ``SCRAPE_TIMEOUT_S``) before each scrape."""
        self._refreshers.append(refresh)

    async def refresh(self) -> None:
        """Run the refreshers; one that fails or hangs leaves its last values in place."""
        if not self._refreshers:
            return
        results = await asyncio.gather(
            *(asyncio.wait_for(r(), SCRAPE_TIMEOUT_S) for r in self._refreshers),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                log.warning("a metric was not refreshed: %s", type(result).__name__)


@dataclass(frozen=True, slots=True)
class Read:
    """One value read at scrape time: a counter (``name`` without ``_total``) or a gauge."""

    name: str
    help: str
    read: Reading
    kind: str = "gauge"  # or "counter"
    labels: Mapping[str, str] | None = None


class Readings(Collector):
    """Values read from the objects that keep them, at scrape time. ``source`` returns the
    readings, or nothing while the objects do not exist yet (before the app's startup)."""

    def __init__(self, source: Callable[[], Iterable[Read]]) -> None:
        self.source = source

    def collect(self) -> Iterable[Metric]:
        families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {}
        for item in self.source():
            family = families.get(item.name)
            names = list(item.labels or {})
            if family is None:
                family = families[item.name] = (
                    CounterMetricFamily(item.name, item.help, labels=names)
                    if item.kind == "counter"
                    else GaugeMetricFamily(item.name, item.help, labels=names)
                )
            family.add_metric(list((item.labels or {}).values()), float(item.read()))
        return list(families.values())


def labelled(registries: Mapping[str, CollectorRegistry], label: str = "service") -> Collector:
    """One collector over several registries, every sample labelled with its registry's key
    (the embedded mode: four apps, one port)."""

    class Labelled(Collector):
        def collect(self) -> Iterable[Metric]:
            merged: dict[str, Metric] = {}
            for value, registry in registries.items():
                for family in registry.collect():
                    into = merged.get(family.name)
                    if into is None:
                        into = merged[family.name] = Metric(
                            family.name, family.documentation, family.type, family.unit
                        )
                    into.samples += [
                        s._replace(labels={label: value, **s.labels}) for s in family.samples
                    ]
            return list(merged.values())

    return Labelled()


def exposition(*registries: CollectorRegistry) -> bytes:
    """The text format of ``registries`` (whose metric names must not overlap)."""
    return b"".join(generate_latest(r) for r in registries)


def metrics_router(metrics: Callable[[Request], Metrics]) -> APIRouter:
    """``GET /metrics``: the app's registry, then the process's (CPU, memory, loop lag)."""
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    async def scrape(request: Request) -> Response:
        own = metrics(request)
        await own.refresh()
        return Response(
            exposition(own.registry, process_registry()), media_type=CONTENT_TYPE_LATEST
        )

    return router


def labelled_metrics_router(apps: Mapping[str, Metrics]) -> APIRouter:
    """``GET /metrics`` of a process that serves several apps (the embedded mode): each app's
    samples labelled with its ``service``, then the process's own."""
    registry = CollectorRegistry()
    registry.register(labelled({name: metrics.registry for name, metrics in apps.items()}))
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    async def scrape() -> Response:
        await asyncio.gather(*(metrics.refresh() for metrics in apps.values()))
        return Response(exposition(registry, process_registry()), media_type=CONTENT_TYPE_LATEST)

    return router


class HttpMetricsMiddleware:
    """Times every HTTP request into ``http_server_request_duration_seconds``. Pure ASGI, so
    streamed responses pass through untouched; WebSockets are not requests and pass by."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.histogram = metrics.http_duration

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets when the app raises before it answers

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.histogram.labels(scope["method"], route_template(scope), str(status)).observe(
                time.perf_counter() - started
            )


def route_template(scope: Scope) -> str:
    """The matched route's path template (``/boards/{board_id}``), never the raw path: raw
    paths would make one time series per board."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED
