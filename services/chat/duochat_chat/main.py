"""chat: messages, read marks, presence, and the STOMP WebSocket endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.routing import WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from duochat_chat.config import Settings
from duochat_chat.routes import router
from duochat_chat.runtime import build_runtime, start
from duochat_chat.session import StompEndpoint
from duochat_common.app import build_app
from duochat_common.tokens import TokenVerifier


def create_app(
    settings: Settings | None = None, *, verifier: TokenVerifier | None = None
) -> FastAPI:
    """The chat app; ``verifier`` replaces the JWKS-backed one (tests without auth)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = build_runtime(settings, verifier)
        app.state.chat = runtime
        app.state.db = runtime.db
        app.state.redis = runtime.redis
        app.state.verifier = runtime.verifier
        start(runtime)
        try:
            yield
        finally:
            await runtime.stop()

    app = build_app(
        title="duochat chat",
        routers=[router],
        lifespan=lifespan,
        health_checks=lambda a: {"database": a.state.db.ping, "redis": a.state.redis.ping},
    )
    # Also routed normally (for the OpenAPI-less route table), but the middleware below takes
    # the socket first: it hands the endpoint uvicorn's own send, with no per-frame wrappers and
    # no stack of middleware frames kept alive by each of thousands of idle connections.
    app.router.routes.append(WebSocketRoute("/ws-stomp", StompEndpoint()))
    app.add_middleware(StompFastPath, path="/ws-stomp", endpoint=StompEndpoint(), app_ref=app)
    app.state.settings = settings
    return app


class StompFastPath:
    """Pure ASGI: ``/ws-stomp`` WebSockets go straight to the STOMP endpoint."""

    def __init__(self, app: ASGIApp, *, path: str, endpoint: StompEndpoint, app_ref: FastAPI):
        self.app = app
        self.path = path
        self.endpoint = endpoint
        self.app_ref = app_ref

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == self.path:
            scope["app"] = self.app_ref
            await self.endpoint(scope, receive, send)  # type: ignore[arg-type]
            return
        await self.app(scope, receive, send)
