"""/metrics of an app built by ``build_app``: the HTTP histogram by route template, the process's
own figures (with the event-loop lag probe running), readings taken at scrape time, and the
embedded mode's one registry labelled by service."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from duochat_common.app import build_app
from duochat_common.errors import NotFound
from duochat_common.metrics import Metrics, Read, Readings, labelled, labelled_metrics_router
from duochat_common.process_metrics import PROBE_INTERVAL_S, process_metrics
from duochat_common.telemetry import Telemetry

router = APIRouter()


@router.get("/items/{item_id}")
async def item(item_id: int) -> dict[str, int]:
    if item_id == 0:
        raise NotFound("no item 0")
    return {"id": item_id}


@router.get("/boom")
async def boom() -> None:
    raise RuntimeError("boom")


@asynccontextmanager
async def nothing(_: FastAPI) -> AsyncIterator[None]:
    yield


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition: (name, labels) -> value."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, frozenset(labels.items())), 0.0)


async def test_requests_are_timed_by_route_template_and_status() -> None:
    app = build_app(title="t", routers=[router], lifespan=nothing)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for item_id in (1, 2, 3, 0):
            await client.get(f"/items/{item_id}")
        await client.get("/no/such/path")
        assert (await client.get("/boom")).status_code == 500
        text = (await client.get("/metrics")).text
    count = "http_server_request_duration_seconds_count"
    assert value(text, count, method="GET", route="/items/{item_id}", status="200") == 3
    assert value(text, count, method="GET", route="/items/{item_id}", status="404") == 1
    # Any path no route knows is one series, not one per path asked for.
    assert value(text, count, method="GET", route="unmatched", status="404") == 1
    assert value(text, count, method="GET", route="/boom", status="500") == 1
    assert not any("/items/1" in str(labels) for _, labels in samples(text))


async def test_the_process_reports_cpu_memory_files_and_event_loop_lag() -> None:
    app = build_app(title="t", routers=[], lifespan=nothing)
    lag_count = "duochat_event_loop_lag_seconds_count"
    async with app.router.lifespan_context(app):
        await asyncio.sleep(0.05)  # the probe is asleep now
        before = value(_process_text(), lag_count)
        time.sleep(PROBE_INTERVAL_S + 0.2)  # block the loop past the probe's wake-up
        await asyncio.sleep(PROBE_INTERVAL_S * 3)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            text = (await client.get("/metrics")).text
    assert value(text, "process_resident_memory_bytes") > 10_000_000
    assert value(text, "process_open_fds") > 3
    assert value(text, "process_cpu_seconds_total") > 0
    assert value(text, lag_count) >= before + 2
    slow = value(text, "duochat_event_loop_lag_seconds_bucket", le="0.1")
    assert value(text, lag_count) > slow  # the stall made one wake-up over 100 ms late


def _process_text() -> str:
    from prometheus_client import generate_latest

    return generate_latest(process_metrics().registry).decode()


async def test_readings_are_taken_when_scraped_and_refreshers_run_first() -> None:
    telemetry = Telemetry("t")
    counts = {"stored": 0}
    telemetry.metrics.registry.register(
        Readings(
            lambda: [
                Read("t_stored", "stored", lambda: counts["stored"], kind="counter"),
                Read("t_depth", "depth", lambda: 7),
            ]
        )
    )
    refreshed: list[int] = []

    async def refresh() -> None:
        refreshed.append(counts["stored"])

    async def hangs() -> None:
        await asyncio.sleep(60)

    telemetry.metrics.before_scrape(refresh)
    telemetry.metrics.before_scrape(hangs)
    app = build_app(title="t", routers=[], lifespan=nothing, telemetry=telemetry)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        counts["stored"] = 41
        started = time.monotonic()
        text = (await c.get("/metrics")).text
        assert time.monotonic() - started < 5  # a hanging refresher is cut off
    assert value(text, "t_stored_total") == 41
    assert value(text, "t_depth") == 7
    assert refreshed == [41]


async def test_the_embedded_mode_labels_every_sample_with_its_service() -> None:
    registries = {}
    apps = {}
    for name, n in (("auth", 1), ("chat", 2)):
        metrics = Metrics(CollectorRegistry())
        Counter("t_same_name", "one family, two services", registry=metrics.registry).inc(n)
        metrics.http_duration.labels("GET", "/x", "200").observe(0.01)
        registries[name] = metrics.registry
        apps[name] = metrics
    families = {f.name: f for f in labelled(registries).collect()}
    assert {
        (s.labels["service"], s.value)
        for s in families["t_same_name"].samples
        if s.name.endswith("_total")
    } == {("auth", 1), ("chat", 2)}

    app = FastAPI()
    app.include_router(labelled_metrics_router(apps))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        text = (await c.get("/metrics")).text
    # One TYPE line per family, whatever the number of services.
    assert text.count("# TYPE t_same_name_total counter") == 1
    assert value(text, "t_same_name_total", service="chat") == 2
    count = "http_server_request_duration_seconds_count"
    assert value(text, count, service="auth", method="GET", route="/x", status="200") == 1
    assert value(text, "process_open_fds") > 0  # once, unlabelled: one process
