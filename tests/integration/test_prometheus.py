"""A real Prometheus (Debian's) scrapes the local-services stack with a config rendered from
the route table, and its HTTP API tells the story of a short conversation: every target up, as
many messages stored as were sent (and as the database holds), every consumer group caught up."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from duochat_common.prometheus import local_config
from duochat_common.routing import ROUTES
from duochat_embedded.localstack import LocalStack, free_port, wait_ready
from tests.integration.conversation import talk
from tests.integration.test_metrics import chat_rows

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


@pytest.fixture
def prometheus(stack: LocalStack, tmp_path: Path) -> Iterator[str]:
    if not Path(PROMETHEUS).exists():
        pytest.fail("prometheus not found (apt-get install -y prometheus)")
    config = tmp_path / "prometheus.yml"
    config.write_text(local_config(stack.ports, interval_s=1))
    url = f"http://127.0.0.1:{free_port()}"
    log = (tmp_path / "prometheus.log").open("ab")
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address={url.removeprefix('http://')}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_ready(f"{url}/-/ready", proc, timeout=60)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def query(url: str, promql: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=10)
    body = response.json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def scalar(url: str, promql: str) -> float | None:
    result = query(url, promql)
    return float(result[0]["value"][1]) if result else None


def eventually(check: Callable[[], bool], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("not reached in time")
        time.sleep(0.5)


@pytest.mark.timeout(600)
def test_prometheus_sees_a_conversation_stored_whole_and_every_consumer_caught_up(
    stack: LocalStack, prometheus: str
) -> None:
    def all_up() -> bool:
        up = {r["metric"]["service"]: r["value"][1] for r in query(prometheus, "up")}
        return up == {r.service: "1" for r in ROUTES}

    eventually(all_up)
    stored = "sum(duochat_chat_messages_stored_total)"
    eventually(lambda: scalar(prometheus, stored) is not None)
    before = scalar(prometheus, stored)
    assert before is not None

    talked = talk(stack.gateway_url, messages=6)
    expected = before + talked.talk + talked.entered

    def caught_up() -> bool:
        return (
            scalar(prometheus, stored) == expected
            and scalar(prometheus, "max(duochat_events_lag)") == 0
            and scalar(prometheus, "sum(duochat_events_pending)") == 0
        )

    eventually(caught_up)
    assert expected == chat_rows(stack)
    # The labels come from the rendered config: one job per service of the route table.
    (series,) = query(prometheus, "duochat_chat_messages_stored_total")
    assert series["metric"]["job"] == "duochat-chat" and series["metric"]["service"] == "chat"
    groups = {
        (r["metric"]["service"], r["metric"]["group"])
        for r in query(prometheus, "duochat_events_lag")
    }
    assert {("chat", "chat"), ("notify", "notify")} <= groups
    assert scalar(prometheus, "sum(duochat_events_dead_lettered_total)") == 0
    # What the README's "Operating duochat" asks of a healthy stack.
    p99 = scalar(
        prometheus,
        "histogram_quantile(0.99, sum by (le) (duochat_chat_send_to_deliver_seconds_bucket))",
    )
    assert p99 is not None and 0 < p99 < 2.5
