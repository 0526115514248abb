"""chat: messages, read marks, presence, and the STOMP WebSocket endpoint."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from opentelemetry.trace import TracerProvider
from starlette.types import Receive, Scope, Send

from duochat_chat.config import Settings
from duochat_chat.metrics import CLOUDWATCH, ChatMetrics
from duochat_chat.routes import router
from duochat_chat.runtime import Runtime, build_runtime, start
from duochat_chat.transport import StompEndpoint, run_ticker
from duochat_common.app import build_app
from duochat_common.db import Database
from duochat_common.events.metrics import BusMetrics
from duochat_common.telemetry import Telemetry
from duochat_common.tokens import TokenVerifier, verifier_for


def create_app(
    settings: Settings | None = None,
    *,
    verifier: TokenVerifier | None = None,
    database: Database | None = None,
    tracer_provider: TracerProvider | None = None,
) -> FastAPI:
    """The chat app; ``verifier`` replaces the JWKS-backed one (tests without auth),
    ``database`` the readers' database (the writer opens an engine of its own on the same
    URL), and ``tracer_provider`` the configured trace export."""
    settings = settings or Settings()
    telemetry = Telemetry.of("chat", settings, tracer_provider=tracer_provider)
    telemetry.export_to_cloudwatch(*CLOUDWATCH)
    chat_metrics = ChatMetrics(telemetry.metrics)
    bus_metrics = BusMetrics(telemetry.metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The instance's name and the verifier are made as every service makes them.
        runtime = build_runtime(
            settings.model_copy(update={"instance_id": settings.instance_name()}),
            verifier or verifier_for(settings),
            database=database,
            metrics=chat_metrics,
            bus_metrics=bus_metrics,
            tracer_provider=telemetry.tracer_provider,
        )
        app.state.chat = runtime
        app.state.db = runtime.db
        app.state.redis = runtime.redis
        app.state.verifier = runtime.verifier
        await start(runtime, run_ticker(runtime))
        restore = drain_on_sigterm(runtime)
        try:
            yield
        finally:
            restore()
            await runtime.stop()

    app = build_app(
        title="duochat chat",
        routers=[router],
        lifespan=lifespan,
        telemetry=telemetry,
        # The STOMP socket skips the middleware stack (see ChatApp); everything else keeps it.
        app_class=ChatApp,
    )
    app.state.settings = settings
    return app


log = logging.getLogger(__name__)
STOMP_PATH = "/ws-stomp"


def drain_on_sigterm(runtime: Runtime) -> Callable[[], None]:
    """Run ``runtime.drain`` before the server's own SIGTERM handling, which closes every
    socket (code 1012) at once: a rolling deploy then hands rooms over and sends the receipts
    of what was stored first. Returns a function that puts the server's handler back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGTERM)
    if not callable(previous):
        return lambda: None  # not served by uvicorn (tests in process): nothing to wrap
    loop = asyncio.get_running_loop()
    server_exit: Callable[[int, Any], Any] = previous

    async def drain_then_exit(sig: int) -> None:
        try:
            await runtime.drain()
        except Exception:
            log.exception("drain failed; shutting down anyway")
        server_exit(sig, None)

    def on_sigterm(sig: int, _frame: Any) -> None:
        loop.call_soon_threadsafe(lambda: loop.create_task(drain_then_exit(sig)))

    signal.signal(signal.SIGTERM, on_sigterm)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    return restore


_STOMP = StompEndpoint()


class ChatApp(FastAPI):
    """The chat app hands ``/ws-stomp`` sockets straight to the STOMP endpoint.

    Each of thousands of idle sockets would otherwise keep a chain of suspended middleware
    frames alive, and every frame sent would pass through per-frame ``send`` wrappers; neither
    does anything for a WebSocket that speaks its own protocol and logs nothing per request.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == STOMP_PATH:
            scope["app"] = self
            await _STOMP(scope, receive, send)  # type: ignore[arg-type]
            return
        await super().__call__(scope, receive, send)
