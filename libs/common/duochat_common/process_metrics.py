"""The process's own metrics: CPU, memory and open files (prometheus-client's process
collector, from ``/proc``), and how late the event loop runs what is due.

They belong to the process, not to an app: the embedded mode runs four apps in one process and
must report one CPU figure, not four. So the registry is one per process, and the loop-lag probe
runs once per event loop however many apps start on it (``monitoring``).

Event-loop lag is the time a sleeper wakes up after it was due. Everything on the loop waits
that long on top of its own work, so a lag of 50 ms is 50 ms added to every message and every
request of the instance: the first thing to look at when everything is slow at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Histogram, ProcessCollector

LOOP_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
PROBE_INTERVAL_S = 0.5


@dataclass(frozen=True)
class ProcessMetrics:
    registry: CollectorRegistry
    loop_lag: Histogram


@functools.cache
def process_metrics() -> ProcessMetrics:
    """This process's metrics: ``process_*`` and ``duochat_event_loop_lag_seconds``."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    loop_lag = Histogram(
        "duochat_event_loop_lag_seconds",
        "How late the event loop woke a sleeper that was due (probed every 0.5 s)",
        buckets=LOOP_LAG_BUCKETS,
        registry=registry,
    )
    return ProcessMetrics(registry=registry, loop_lag=loop_lag)


def process_registry() -> CollectorRegistry:
    return process_metrics().registry


async def probe(histogram: Histogram, interval: float = PROBE_INTERVAL_S) -> None:
    """Sleep ``interval`` again and again, and record how late each wake-up came."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + interval
        await asyncio.sleep(interval)
        histogram.observe(max(0.0, loop.time() - due))


_probes: dict[asyncio.AbstractEventLoop, tuple[asyncio.Task[None], int]] = {}


@contextlib.asynccontextmanager
async def monitoring() -> AsyncIterator[None]:
    """The loop-lag probe runs on this loop while at least one app on it is running."""
    loop = asyncio.get_running_loop()
    task, users = _probes.get(loop, (None, 0))
    if task is None or task.done():
        task = loop.create_task(probe(process_metrics().loop_lag), name="event-loop-lag-probe")
    _probes[loop] = (task, users + 1)
    try:
        yield
    finally:
        task, users = _probes[loop]
        if users <= 1:
            del _probes[loop]
            task.cancel()
        else:
            _probes[loop] = (task, users - 1)
