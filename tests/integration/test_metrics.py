"""Each service's /metrics on its own port, never through the gateway, and the named metrics
moving under a short conversation of the local-services stack (MariaDB, Redis, nginx)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from duochat_common.routing import INTERNAL_PATHS, ROUTES
from duochat_embedded.localstack import LocalStack, describe
from tests.integration.conversation import talk

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(stack: LocalStack, service: str) -> Samples:
    response = httpx.get(stack.metrics_url(service), timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name`` over the series whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def eventually(check: Callable[[], bool], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("not reached in time")
        time.sleep(0.2)


@pytest.mark.timeout(600)  # may start the stack
def test_metrics_are_served_on_each_port_and_never_through_the_gateway(stack: LocalStack) -> None:
    for path in INTERNAL_PATHS:
        response = httpx.get(f"{stack.gateway_url}{path}")
        assert response.status_code == 404, response.text
        assert "duochat" not in response.text
    for route in ROUTES:
        samples = scrape(stack, route.service)
        names = {name for name, _ in samples}
        assert {
            "http_server_request_duration_seconds_count",
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "duochat_event_loop_lag_seconds_count",
        } <= names, (route.service, sorted(names))
        assert samples[("process_resident_memory_bytes", frozenset())] > 10e6


def test_make_services_says_where_the_metrics_are(stack: LocalStack) -> None:
    text = describe(stack)
    for route in ROUTES:
        url = stack.metrics_url(route.service)
        assert url in text and httpx.get(url).status_code == 200
    # ...and writes a scrape config for exactly these ports.
    assert str(stack.prometheus_config) in text
    config = json.loads(stack.prometheus_config.read_text())
    targets = {
        job["static_configs"][0]["labels"]["service"]: job["static_configs"][0]["targets"]
        for job in config["scrape_configs"]
    }
    assert targets == {name: [f"127.0.0.1:{port}"] for name, port in stack.ports.items()}


@pytest.mark.timeout(600)
def test_the_named_metrics_move_under_a_short_conversation(stack: LocalStack) -> None:
    before = {r.service: scrape(stack, r.service) for r in ROUTES}
    during: dict[str, Samples] = {}

    def look() -> None:
        during["chat"] = scrape(stack, "chat")
        during["notify"] = scrape(stack, "notify")

    talked = talk(stack.gateway_url, messages=6, during=look)

    # While both members were in the room and the writer's SSE stream was open.
    assert total(during["chat"], "duochat_chat_connections") >= 2
    assert total(during["chat"], "duochat_chat_subscriptions") >= 2
    assert total(during["notify"], "duochat_notify_streams") >= 1

    def settled() -> bool:
        after = scrape(stack, "chat")
        lag = total(after, "duochat_events_lag") + total(
            scrape(stack, "notify"), "duochat_events_lag"
        )
        stored = total(after, "duochat_chat_messages_stored_total")
        return (
            lag == 0 and stored - total(before["chat"], "duochat_chat_messages_stored_total") >= 8
        )

    eventually(settled)
    after = {r.service: scrape(stack, r.service) for r in ROUTES}

    def moved(service: str, name: str, **labels: str) -> float:
        return total(after[service], name, **labels) - total(before[service], name, **labels)

    # auth: two sign-ins, two accounts hashed.
    assert moved("auth", "duochat_auth_logins_total", outcome="success") == 2
    assert moved("auth", "http_server_request_duration_seconds_count", route="/auth/login") == 2
    assert total(after["auth"], "duochat_auth_hashes_in_flight") == 0
    # boards: the board and the application, by route template.
    assert moved("boards", "http_server_request_duration_seconds_count", route="/boards") == 1
    apply = "/boards/{board_id}/apply"
    assert (
        moved("boards", "http_server_request_duration_seconds_count", route=apply, status="201")
        == 1
    )
    # chat: six messages and two ENTER lines stored, all delivered to both subscriptions.
    assert moved("chat", "duochat_chat_messages_stored_total") == talked.talk + talked.entered
    assert moved("chat", "duochat_chat_messages_delivered_total") >= 2 * talked.talk - 1
    assert moved("chat", "duochat_chat_send_to_deliver_seconds_count", hop="owner") >= 1
    assert moved("chat", "duochat_chat_write_batch_size_count") >= 1
    assert moved("chat", "duochat_chat_write_batch_size_sum") == talked.talk + talked.entered
    assert moved("chat", "duochat_chat_commit_seconds_count") >= 1
    assert moved("chat", "duochat_events_consumed_total", group="chat") >= 1  # board.applied
    assert total(after["chat"], "duochat_chat_errors_total", reason="internal") == 0
    # notify: the applied and message alarms, each on the writer's stream, and how long they took.
    assert talked.alarms == {"applied": 1, "message": 1}
    assert moved("notify", "duochat_notify_events_total", kind="applied") == 1
    assert moved("notify", "duochat_notify_events_total", kind="message") == 1
    assert moved("notify", "duochat_notify_delivery_seconds_count") == 2
    assert moved("notify", "duochat_events_consumed_total", group="notify") >= 2 + talked.talk
    # Every consumer group caught up.
    for service in ("chat", "notify"):
        assert total(after[service], "duochat_events_lag") == 0
        assert total(after[service], "duochat_events_dead_lettered_total") == 0
    # The stored counter is what the database holds (this chat process stored every row).
    assert total(after["chat"], "duochat_chat_messages_stored_total") == chat_rows(stack)


def chat_rows(stack: LocalStack) -> int:
    url = stack.databases["chat"].replace("mysql://", "mysql+pymysql://", 1)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT COUNT(*) FROM chat_messages")).scalar_one())
    finally:
        engine.dispose()
