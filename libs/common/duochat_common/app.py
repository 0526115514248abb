"""What every service's ``create_app`` shares: error mapping, request ids, health routes,
``/metrics`` and the HTTP histogram, and a server span per request when tracing is on."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.routing import APIRouter

from duochat_common.errors import install_error_handlers
from duochat_common.health import health_router, resource_checks
from duochat_common.heap import settle_heap
from duochat_common.logs import RequestIdMiddleware
from duochat_common.metrics import HttpMetricsMiddleware, Metrics, metrics_router
from duochat_common.telemetry import Telemetry
from duochat_common.tracing import TracingMiddleware

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[Any]]


def build_app(
    *,
    title: str,
    routers: list[APIRouter],
    lifespan: Lifespan,
    telemetry: Telemetry | None = None,
    app_class: type[FastAPI] = FastAPI,
) -> FastAPI:
    """A FastAPI app with the shared middleware, error handlers, health and metrics routes.

    ``telemetry`` defaults to a registry of its own and no tracing. ``app_class`` lets a
    service intercept some scopes before the middleware stack (chat's STOMP socket). ``/readyz``
    checks the database and Redis that the lifespan keeps in ``app.state.db`` and ``.redis``."""
    telemetry = telemetry or Telemetry(title)
    app = app_class(title=title, lifespan=_then_settle(lifespan), version="1.0.0")
    app.state.telemetry = telemetry
    install_error_handlers(app)
    # The last added runs first: the span, then the timing, then the request id.
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(HttpMetricsMiddleware, metrics=telemetry.metrics)
    tracer = telemetry.tracer
    if tracer is not None:
        app.add_middleware(TracingMiddleware, tracer=tracer)
    app.include_router(health_router(lambda: resource_checks(app.state)))
    app.include_router(metrics_router(_metrics))
    for router in routers:
        app.include_router(router)
    return app


def _metrics(request: Request) -> Metrics:
    telemetry: Telemetry = request.app.state.telemetry
    return telemetry.metrics


def _then_settle(lifespan: Lifespan) -> Lifespan:
    """The service's lifespan, and once its startup is done, the heap settled (see heap.py);
    the telemetry's own loops run meanwhile."""

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[Any]:
        telemetry: Telemetry = app.state.telemetry
        async with telemetry.running(), lifespan(app) as state:
            settle_heap()
            yield state

    return run
