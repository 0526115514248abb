"""An ASGI app that sends each request where the ALB would: the route table decides.

Paths are passed on unchanged (no prefix stripping), exactly as the ALB forwards them, so each
service sees the same paths in every running mode.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager

from starlette.types import ASGIApp, Receive, Scope, Send

from duochat_common.routing import route_for

OWN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class RouteTableDispatcher:
    def __init__(self, services: Mapping[str, ASGIApp], default: ASGIApp, own: ASGIApp) -> None:
        self.services = dict(services)
        self.default = default
        self.own = own  # this process's own /healthz, /readyz and /metrics

    def pick(self, path: str) -> ASGIApp:
        if path in OWN_PATHS:
            return self.own
        route = route_for(path)
        if route is not None and route.service in self.services:
            return self.services[route.service]
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        await self.pick(scope["path"])(scope, receive, send)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run every service's lifespan, in route-table order, and close them in reverse."""
        async with AsyncExitStack() as stack:
            for app in self.services.values():
                await stack.enter_async_context(app.router.lifespan_context(app))  # type: ignore[attr-defined]
            yield

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        try:
            async with self.running():
                await send({"type": "lifespan.startup.complete"})
                message = await receive()
                assert message["type"] == "lifespan.shutdown"
        except Exception as exc:
            await send({"type": "lifespan.startup.failed", "message": repr(exc)})
            raise
        await send({"type": "lifespan.shutdown.complete"})
