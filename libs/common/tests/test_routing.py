"""The route table: the single source of truth for path rules, ports and health checks."""

from __future__ import annotations

import pytest

from duochat_common.routing import (
    EMBEDDED_PORT,
    GATEWAY_PORT,
    ROUTES,
    WEB_PORT,
    Route,
    by_service,
    route_for,
)


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("/auth", "auth"),
        ("/auth/login", "auth"),
        ("/auth/.well-known/jwks.json", "auth"),
        ("/boards", "boards"),
        ("/boards/12/apply", "boards"),
        ("/boards/rooms", "boards"),
        ("/chat/rooms/r1/messages", "chat"),
        ("/ws-stomp", "chat"),
        ("/ws-stomp/info", "chat"),
        ("/notify/stream", "notify"),
        ("/notify/alarms/read", "notify"),
        ("/", None),
        ("/index.html", None),
        ("/board/12", None),  # the SPA's own paths go to the web app
        ("/room/abc", None),
        ("/authx", None),
        ("/boardsx", None),
        ("/chat", None),
        ("/notify", None),
        ("/healthz", None),  # health paths are per port, never public
        ("/readyz", None),
    ],
)
def test_route_for(path: str, service: str | None) -> None:
    route = route_for(path)
    assert (route.service if route else None) == service


def test_route_for_picks_the_lowest_priority_number() -> None:
    wide = Route(service="wide", port=9001, paths=("/api/*",), priority=50)
    narrow = Route(service="narrow", port=9002, paths=("/api/special/*",), priority=5)
    table = (wide, narrow)
    assert route_for("/api/special/x", table) is narrow
    assert route_for("/api/other", table) is wide
    narrow_last = Route(service="narrow", port=9002, paths=("/api/special/*",), priority=60)
    assert route_for("/api/special/x", (wide, narrow_last)) is wide


def test_services_ports_and_priorities_are_distinct() -> None:
    services = [r.service for r in ROUTES]
    ports = [r.port for r in ROUTES]
    priorities = [r.priority for r in ROUTES]
    assert services == ["auth", "boards", "chat", "notify"]
    assert len(set(ports)) == len(ports)
    assert len(set(priorities)) == len(priorities)
    assert not {GATEWAY_PORT, EMBEDDED_PORT, WEB_PORT} & set(ports)
    assert all(1 <= p <= 50_000 for p in priorities)  # the ALB's rule priority range


def test_every_route_is_well_formed() -> None:
    for route in ROUTES:
        assert route.paths, route
        assert all(p.startswith("/") for p in route.paths), route
        assert route.health_path == "/readyz" and route.liveness_path == "/healthz"
        assert not route.matches(route.health_path)  # health checks stay off the public rules
        for sse in route.sse_paths:
            assert route_for(sse) is route
        assert by_service(route.service) is route


def test_only_chat_takes_websockets() -> None:
    assert [r.service for r in ROUTES if r.websocket] == ["chat"]
    assert [r.service for r in ROUTES if r.sse_paths] == ["notify"]


def test_by_service_of_an_unknown_name() -> None:
    with pytest.raises(KeyError):
        by_service("billing")
