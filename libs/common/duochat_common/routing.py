"""The route table: the single source of truth for path rules, ports and health checks.

The ALB listener rules (CDK), the nginx gateway (compose and local services mode) and the
embedded runner are all generated from ``ROUTES``. Patterns use ALB path-pattern syntax,
where ``*`` matches any run of characters (including ``/``).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Route:
    """One backend service as the load balancer sees it."""

    service: str
    port: int
    paths: tuple[str, ...]
    priority: int
    # Readiness (200 only when the database and Redis answer): compose's start-up order,
    # the local gateway's wait and the alarms. Never the ALB's check: a Redis failover or an
    # RDS reboot would fail every target at once, and ECS would replace every task.
    health_path: str = "/readyz"
    # Liveness (no I/O): what each ALB target group and the container health check probe.
    liveness_path: str = "/healthz"
    websocket: bool = False
    sse_paths: tuple[str, ...] = ()

    def matches(self, path: str) -> bool:
        """True when ``path`` matches one of this route's ALB path patterns."""
        return any(fnmatch.fnmatchcase(path, pattern) for pattern in self.paths)


ROUTES: tuple[Route, ...] = (
    Route(service="auth", port=8001, paths=("/auth", "/auth/*"), priority=10),
    Route(service="boards", port=8002, paths=("/boards", "/boards/*"), priority=20),
    Route(
        service="chat",
        port=8003,
        paths=("/chat/*", "/ws-stomp", "/ws-stomp/*"),
        priority=30,
        websocket=True,
    ),
    Route(
        service="notify",
        port=8004,
        paths=("/notify/*",),
        priority=40,
        sse_paths=("/notify/stream",),
    ),
)

# Served by every service on its own port, for whoever reaches that port inside the network
# (Prometheus), and never routed from outside: the ALB and the gateways answer these 404.
METRICS_PATH = "/metrics"
INTERNAL_PATHS: tuple[str, ...] = (METRICS_PATH,)
# Before every route's rule.
INTERNAL_PRIORITY = 1

# The default rule (`/*`) goes to the static web app.
WEB_SERVICE = "web"
WEB_PORT = 8080
GATEWAY_PORT = 8080
EMBEDDED_PORT = 8000


def route_for(path: str, routes: Sequence[Route] = ROUTES) -> Route | None:
    """The route an ALB would pick for ``path``: the lowest priority number that matches."""
    for route in sorted(routes, key=lambda r: r.priority):
        if route.matches(path):
            return route
    return None


def by_service(name: str) -> Route:
    """The route of service ``name``."""
    for route in ROUTES:
        if route.service == name:
            return route
    raise KeyError(name)
