"""notify: notifications and the SSE stream; ``create_app(settings)`` and its lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from opentelemetry.trace import TracerProvider
from redis.asyncio import Redis

from duochat_common.app import Lifespan, build_app
from duochat_common.db import Database, utcnow
from duochat_common.events.metrics import BusMetrics
from duochat_common.events.schemas import BOARDS_STREAM, CHAT_STREAM
from duochat_common.resources import opened
from duochat_common.telemetry import Telemetry
from duochat_common.tokens import TokenVerifier, verifier_for
from duochat_notify import service
from duochat_notify.config import Settings
from duochat_notify.consumer import BatchConsumer
from duochat_notify.delivery import Delivery
from duochat_notify.fanout import Fanout
from duochat_notify.held import HeldPushes
from duochat_notify.metrics import CLOUDWATCH, NotifyMetrics
from duochat_notify.routes import router
from duochat_notify.slots import StreamSlots
from duochat_notify.streams import Streams
from duochat_notify.tickets import Tickets
from duochat_notify.triggers import Triggers

log = logging.getLogger(__name__)

CONSUMER_GROUP = "notify"
SHUTDOWN_WAIT_SECONDS = 5.0
# How often a consuming instance pushes the held alarms that are due.
HELD_RELEASE_SECONDS = 1.0


async def _every(seconds: float, job: Callable[[], Awaitable[object]], name: str) -> None:
    """Run ``job`` now and then every ``seconds`` until cancelled; a failure is logged."""
    while True:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("periodic job failed", exc_info=True, extra={"fields": {"job": name}})
        await asyncio.sleep(seconds)


def _streams(app: FastAPI, settings: Settings, redis: Redis, instance: str) -> None:
    """What serves the SSE streams of this instance's users, into ``app.state``."""
    delivery = Delivery(redis, settings, app.state.notify_metrics)
    fanout = Fanout(
        redis,
        inbox_key=delivery.keys.inbox(instance),
        key_of=delivery.stream_key,
        block_ms=settings.delivery_block_ms,
        max_queued=settings.stream_queue_size,
    )
    tickets = Tickets(redis, settings)
    app.state.slots = StreamSlots(redis, settings, instance=instance)
    app.state.delivery = delivery
    app.state.fanout = fanout
    app.state.tickets = tickets
    app.state.streams = Streams(
        tickets=tickets,
        slots=app.state.slots,
        fanout=fanout,
        keepalive_seconds=settings.keepalive_seconds,
    )


def _pruner(settings: Settings, db: Database) -> Callable[[], Awaitable[None]]:
    async def prune() -> None:
        read_before = utcnow() - timedelta(days=settings.prune_read_after_days)
        async with db.session() as session:
            pruned = await service.prune_read(session=session, read_before=read_before)
        if pruned:
            log.info("pruned read alarms", extra={"fields": {"count": pruned}})

    return prune


def _consumers(
    app: FastAPI, settings: Settings, instance: str, stop: asyncio.Event
) -> list[Coroutine[Any, Any, None]]:
    """The jobs of an instance that consumes events: both streams and the held alarms."""
    db: Database = app.state.db
    delivery: Delivery = app.state.delivery
    held = HeldPushes(
        app.state.redis,
        key=delivery.keys.held(),
        db=db,
        delivery=delivery,
        hold_seconds=settings.presence_hold_seconds,
    )
    triggers = Triggers(
        db=db, delivery=delivery, preview_max_chars=settings.preview_max_chars, held=held
    )
    jobs = [_every(HELD_RELEASE_SECONDS, held.release_due, "held")]
    for stream in (BOARDS_STREAM, CHAT_STREAM):
        consumer = BatchConsumer(
            app.state.redis,
            stream=settings.key(stream),
            group=CONSUMER_GROUP,
            consumer=instance,
            handler=triggers.handle,
            batch_handler=triggers.handle_batch,
            block_ms=settings.consumer_block_ms,
            claim_idle_ms=settings.consumer_claim_idle_ms,
            linger_ms=settings.consumer_linger_ms,
            metrics=app.state.bus_metrics,
            tracer=app.state.telemetry.tracer,
        )
        jobs.append(consumer.run(stop))
    return jobs


@asynccontextmanager
async def _running(
    jobs: list[Coroutine[Any, Any, None]], stop: asyncio.Event, fanout: Fanout
) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(job) for job in jobs]
    try:
        yield
    finally:
        # Flags first, then cancellation: a cancel that lands while a Redis read times out can
        # be swallowed (Python 3.11's asyncio.timeout), and the loops then stop on their flags.
        stop.set()
        fanout.close_all()
        for task in tasks:
            task.cancel()
        _, stuck = await asyncio.wait(tasks, timeout=SHUTDOWN_WAIT_SECONDS)
        if stuck:
            log.warning("background tasks still running at shutdown: %d", len(stuck))


def _lifespan(
    settings: Settings, verifier: TokenVerifier | None, database: Database | None
) -> Lifespan:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        instance = settings.instance_name()
        async with opened(app.state, settings, database=database) as (db, redis):
            app.state.verifier = verifier or verifier_for(settings)
            _streams(app, settings, redis, instance)
            jobs = [
                app.state.fanout.run(),
                _every(settings.stream_slot_ttl_seconds / 3, app.state.slots.refresh, "slots"),
                _every(settings.prune_interval_seconds, _pruner(settings, db), "prune"),
            ]
            stop = asyncio.Event()
            if settings.consume_events:
                jobs += _consumers(app, settings, instance, stop)
            async with _running(jobs, stop, app.state.fanout):
                yield

    return lifespan


def create_app(
    settings: Settings | None = None,
    *,
    verifier: TokenVerifier | None = None,
    database: Database | None = None,
    tracer_provider: TracerProvider | None = None,
) -> FastAPI:
    """The notify app; ``settings`` defaults to the environment. ``verifier`` and ``database``
    replace the ones built from ``settings`` (a given database stays open when the app stops),
    ``tracer_provider`` the configured trace export."""
    settings = settings or Settings()
    telemetry = Telemetry.of("notify", settings, tracer_provider=tracer_provider)
    telemetry.export_to_cloudwatch(*CLOUDWATCH)
    app = build_app(
        title="duochat notify",
        routers=[router],
        lifespan=_lifespan(settings, verifier, database),
        telemetry=telemetry,
    )
    app.state.settings = settings
    app.state.bus_metrics = BusMetrics(telemetry.metrics)
    app.state.notify_metrics = NotifyMetrics(telemetry.metrics, lambda: _streams_open(app))
    return app


def _streams_open(app: FastAPI) -> int | None:
    fanout: Fanout | None = getattr(app.state, "fanout", None)
    return None if fanout is None else fanout.connected
