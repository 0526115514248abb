"""The notify service: ``create_app(settings)`` and its lifespan."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI
from opentelemetry.trace import TracerProvider

from duochat_common.app import build_app
from duochat_common.db import Database, utcnow
from duochat_common.events.metrics import BusMetrics
from duochat_common.events.schemas import BOARDS_STREAM, CHAT_STREAM
from duochat_common.health import Check
from duochat_common.redis_store import create_redis, ping
from duochat_common.telemetry import Telemetry
from duochat_common.tokens import TokenVerifier
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


def _instance_id(settings: Settings) -> str:
    return settings.instance_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    telemetry: Telemetry = app.state.telemetry
    instance = _instance_id(settings)
    db = Database(settings.database_url)
    redis = create_redis(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        cluster=settings.redis_cluster,
    )
    delivery = Delivery(redis, settings, app.state.notify_metrics)
    fanout = Fanout(
        redis,
        inbox_key=delivery.keys.inbox(instance),
        key_of=delivery.stream_key,
        block_ms=settings.delivery_block_ms,
        max_queued=settings.stream_queue_size,
    )
    slots = StreamSlots(redis, settings, instance=instance)
    tickets = Tickets(redis, settings)
    app.state.db = db
    app.state.redis = redis
    app.state.verifier = TokenVerifier(
        settings.jwks_fetcher(),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        cache_seconds=settings.jwks_cache_seconds,
    )
    app.state.delivery = delivery
    app.state.fanout = fanout
    app.state.tickets = tickets
    app.state.streams = Streams(
        tickets=tickets, slots=slots, fanout=fanout, keepalive_seconds=settings.keepalive_seconds
    )

    async def prune() -> None:
        read_before = utcnow() - timedelta(days=settings.prune_read_after_days)
        async with db.session() as session:
            pruned = await service.prune_read(session=session, read_before=read_before)
        if pruned:
            log.info("pruned read alarms", extra={"fields": {"count": pruned}})

    jobs = [
        fanout.run(),
        _every(settings.stream_slot_ttl_seconds / 3, slots.refresh, "slots"),
        _every(settings.prune_interval_seconds, prune, "prune"),
    ]
    stop = asyncio.Event()
    if settings.consume_events:
        held = HeldPushes(
            redis,
            key=delivery.keys.held(),
            db=db,
            delivery=delivery,
            hold_seconds=settings.presence_hold_seconds,
        )
        triggers = Triggers(
            db=db,
            delivery=delivery,
            preview_max_chars=settings.preview_max_chars,
            held=held,
        )
        jobs.append(_every(HELD_RELEASE_SECONDS, held.release_due, "held"))
        for stream in (BOARDS_STREAM, CHAT_STREAM):
            consumer = BatchConsumer(
                redis,
                stream=settings.key(stream),
                group=CONSUMER_GROUP,
                consumer=instance,
                handler=triggers.handle,
                batch_handler=triggers.handle_batch,
                block_ms=settings.consumer_block_ms,
                claim_idle_ms=settings.consumer_claim_idle_ms,
                metrics=app.state.bus_metrics,
                tracer=telemetry.tracer,
            )
            jobs.append(consumer.run(stop))
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
        await redis.aclose()
        await db.dispose()


def _health_checks(app: FastAPI) -> dict[str, Check]:
    async def redis_ping() -> None:
        await ping(app.state.redis)

    return {"database": app.state.db.ping, "redis": redis_ping}


def create_app(
    settings: Settings | None = None, *, tracer_provider: TracerProvider | None = None
) -> FastAPI:
    """The notify app; ``settings`` defaults to the environment, ``tracer_provider`` replaces
    the configured trace export."""
    settings = settings or Settings()
    telemetry = Telemetry.of("notify", settings, tracer_provider=tracer_provider)
    telemetry.export_to_cloudwatch(*CLOUDWATCH)
    app = build_app(
        title="duochat notify",
        routers=[router],
        lifespan=lifespan,
        health_checks=_health_checks,
        telemetry=telemetry,
    )
    app.state.settings = settings
    app.state.bus_metrics = BusMetrics(telemetry.metrics)
    app.state.notify_metrics = NotifyMetrics(telemetry.metrics, lambda: _streams_open(app))
    return app


def _streams_open(app: FastAPI) -> int | None:
    fanout: Fanout | None = getattr(app.state, "fanout", None)
    return None if fanout is None else fanout.connected
