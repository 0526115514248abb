"""What every service's ``create_app`` shares: error mapping, request ids, health routes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRouter

from duochat_common.errors import install_error_handlers
from duochat_common.health import Check, health_router
from duochat_common.heap import settle_heap
from duochat_common.logs import RequestIdMiddleware

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[Any]]


def build_app(
    *,
    title: str,
    routers: list[APIRouter],
    lifespan: Lifespan,
    health_checks: Callable[[FastAPI], dict[str, Check]],
    app_class: type[FastAPI] = FastAPI,
) -> FastAPI:
    """A FastAPI app with the shared middleware, error handlers and health routes.

    ``app_class`` lets a service intercept some scopes before the middleware stack (chat's
    STOMP socket)."""
    app = app_class(title=title, lifespan=_then_settle(lifespan), version="1.0.0")
    install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(health_router(lambda: health_checks(app)))
    for router in routers:
        app.include_router(router)
    return app


def _then_settle(lifespan: Lifespan) -> Lifespan:
    """The service's lifespan, and once its startup is done, the heap settled (see heap.py)."""

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[Any]:
        async with lifespan(app) as state:
            settle_heap()
            yield state

    return run
