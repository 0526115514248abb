"""The local-services mode end to end: every request goes through nginx, whose config is
generated from the route table, to separate service processes on MariaDB and Redis."""

from __future__ import annotations

import uuid

import httpx
import pytest

from duochat_common.routing import ROUTES
from duochat_embedded.localstack import LocalStack
from tests.integration.flows import board_story, register_and_login


@pytest.mark.timeout(600)  # the first test also starts the stack
def test_board_story_through_nginx(stack: LocalStack) -> None:
    with httpx.Client(base_url=stack.gateway_url, timeout=10) as client:
        writer = register_and_login(client, f"w{uuid.uuid4().hex[:8]}")
        applicant = register_and_login(client, f"a{uuid.uuid4().hex[:8]}")
        board_story(client, writer, applicant)


def test_every_service_is_ready_on_its_own_port(stack: LocalStack) -> None:
    for route in ROUTES:
        response = httpx.get(f"{stack.service_url(route.service)}{route.health_path}")
        assert response.status_code == 200, (route.service, response.text)
        checks = response.json()["checks"]
        assert {"database", "redis"} <= set(checks), checks
        assert all(v == "ok" for v in checks.values()), checks


def test_request_id_follows_the_request(stack: LocalStack) -> None:
    rid = uuid.uuid4().hex
    response = httpx.get(
        f"{stack.gateway_url}/auth/.well-known/jwks.json", headers={"X-Request-ID": rid}
    )
    assert response.headers["x-request-id"] == rid
    generated = httpx.get(f"{stack.gateway_url}/auth/.well-known/jwks.json")
    assert len(generated.headers["x-request-id"]) >= 16


def test_health_paths_are_not_public(stack: LocalStack) -> None:
    # /readyz is for the load balancer's per-port checks; through the gateway it is the web app.
    response = httpx.get(f"{stack.gateway_url}/readyz")
    assert "checks" not in response.text
