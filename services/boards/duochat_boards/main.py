"""boards: boards, applications (rooms and their two members) and matches."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from opentelemetry.trace import TracerProvider

from duochat_boards.config import Settings
from duochat_boards.evidence import ChatHistory
from duochat_boards.outbox import Outbox
from duochat_boards.routes import router
from duochat_common.app import Lifespan, build_app
from duochat_common.db import Database
from duochat_common.events import EventBus
from duochat_common.ratelimit import WindowLimiter
from duochat_common.resources import opened
from duochat_common.telemetry import Telemetry
from duochat_common.tokens import TokenVerifier, verifier_for


def _lifespan(
    settings: Settings, verifier: TokenVerifier | None, database: Database | None
) -> Lifespan:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with opened(app.state, settings, database=database) as (db, redis):
            bus = EventBus(redis)
            outbox = Outbox(
                db=db,
                bus=bus,
                stream_key=settings.key,
                grace_seconds=settings.outbox_grace_seconds,
                retention_seconds=settings.outbox_retention_seconds,
            )
            app.state.bus = bus
            app.state.outbox = outbox
            app.state.report_limiter = WindowLimiter(
                redis,
                prefix=settings.redis_prefix,
                name="boards:reports",
                limit=settings.reports_per_window,
                window_seconds=settings.report_window_seconds,
            )
            app.state.verifier = verifier or verifier_for(settings)
            async with httpx.AsyncClient(timeout=5.0) as http:
                # Where reports copy the messages they name from: chat's history API, unless
                # a test put a source of its own in ``app.state`` before starting the app.
                if getattr(app.state, "message_source", None) is None:
                    app.state.message_source = ChatHistory(http, settings.chat_url)
                async with _relay(outbox, settings.outbox_relay_seconds):
                    yield

    return lifespan


@asynccontextmanager
async def _relay(outbox: Outbox, interval: float) -> AsyncIterator[None]:
    """The outbox relay, every ``interval`` seconds while the app runs (none when 0)."""
    if interval <= 0:
        yield
        return
    relay = asyncio.create_task(outbox.run(interval=interval), name="boards-outbox-relay")
    try:
        yield
    finally:
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay


def create_app(
    settings: Settings | None = None,
    *,
    verifier: TokenVerifier | None = None,
    database: Database | None = None,
    tracer_provider: TracerProvider | None = None,
) -> FastAPI:
    """The boards app. ``verifier`` and ``database`` replace the ones built from ``settings``
    (tests sign their own tokens and run each test in a transaction they roll back); a given
    database stays open when the app stops, as its owner disposes of it. ``tracer_provider``
    traces into it instead of the OTLP export the settings ask for."""
    settings = settings or Settings()
    app = build_app(
        title="duochat boards",
        routers=[router],
        lifespan=_lifespan(settings, verifier, database),
        telemetry=Telemetry.of("boards", settings, tracer_provider=tracer_provider),
    )
    app.state.settings = settings
    return app
