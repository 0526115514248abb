"""`make run` as a newcomer uses it: the embedded process answers the whole board story with the
demo accounts, stops on Ctrl-C, and keeps its data across a restart."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from duochat_embedded.process import EmbeddedProcess
from tests.integration.flows import board_story, login


def test_demo_accounts_tell_the_board_story(embedded: EmbeddedProcess) -> None:
    with httpx.Client(base_url=embedded.url, timeout=10) as client:
        happy = login(client, "happydaddy", "1234")
        angry = login(client, "angrydaddy", "1234")
        assert client.get("/auth/me", headers=happy).json()["username"] == "happydaddy"
        board_story(client, happy, angry)
        assert client.get("/").status_code == 200
        assert client.get("/readyz").json()["status"] == "ready"


def test_ctrl_c_stops_cleanly_and_data_survives_a_restart(embedded: EmbeddedProcess) -> None:
    with httpx.Client(base_url=embedded.url, timeout=10) as client:
        happy = login(client, "happydaddy", "1234")
        made = client.post("/boards", json={"title": "still here?"}, headers=happy)
        assert made.status_code == 201
    assert embedded.stop() == 0
    embedded.start()
    with httpx.Client(base_url=embedded.url, timeout=10) as client:
        happy = login(client, "happydaddy", "1234")
        titles = [b["title"] for b in client.get("/boards", headers=happy).json()["items"]]
        assert "still here?" in titles


def test_one_port_serves_every_services_metrics_by_service_label(
    embedded: EmbeddedProcess,
) -> None:
    with httpx.Client(base_url=embedded.url, timeout=10) as client:
        happy = login(client, "happydaddy", "1234")
        angry = login(client, "angrydaddy", "1234")
        board_story(client, happy, angry)
        response = client.get("/metrics")
    assert response.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    requests = families["http_server_request_duration_seconds"].samples
    assert {s.labels["service"] for s in requests} == {"auth", "boards"}
    logins = {
        s.labels["outcome"]: s.value
        for s in families["duochat_auth_logins"].samples
        if s.name.endswith("_total")
    }
    assert logins["success"] == 2
    assert {s.labels["service"] for s in families["duochat_events_lag"].samples} == {
        "chat",
        "notify",
    }
    # The process's own figures once, unlabelled: one process serves them all.
    (rss,) = families["process_resident_memory_bytes"].samples
    assert "service" not in rss.labels and rss.value > 10e6
