"""`make run` as a newcomer uses it: the embedded process answers the whole board story with the
demo accounts, stops on Ctrl-C, and keeps its data across a restart."""

from __future__ import annotations

import httpx

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
