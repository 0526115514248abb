"""Setting up state straight through the public API (HTTP and STOMP), faster than a browser."""

from __future__ import annotations

import json
import time

import httpx
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from .helpers import STRONG_PASSWORD, unique


def login(api: httpx.Client, username: str, password: str) -> str:
    res = api.post("/auth/login", json={"username": username, "password": password})
    res.raise_for_status()
    return res.json()["accessToken"]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def frame(command: str, headers: dict[str, str], body: str = "") -> str:
    head = "".join(f"{k}:{v}\n" for k, v in headers.items())
    return f"{command}\n{head}\n{body}\x00"


def parse(raw: str | bytes) -> tuple[str, dict[str, str], str]:
    text = raw.decode() if isinstance(raw, bytes) else raw
    head, _, body = text.lstrip("\r\n").partition("\n\n")
    command, *lines = head.split("\n")
    headers = dict(line.split(":", 1) for line in lines if ":" in line)
    return command, headers, body.rstrip("\x00")


def send_messages(base_url: str, token: str, room_id: str, texts: list[str]) -> None:
    """Sends each text as a TALK and waits for its receipt before the next one.

    Paced under the server's flood limit (20 messages a second per connection).
    """
    url = base_url.replace("http", "ws", 1) + "/ws-stomp"
    with connect(url, subprotocols=[Subprotocol("v12.stomp")], open_timeout=10) as ws:
        ws.send(frame("CONNECT", {"accept-version": "1.2", "host": "duochat", "token": token}))
        command, headers, _ = parse(ws.recv(timeout=10))
        assert command == "CONNECTED", (command, headers)
        for i, text in enumerate(texts):
            time.sleep(0.06)
            body = json.dumps({"type": "TALK", "roomId": room_id, "message": text})
            receipt = f"seed-{i}"
            headers = {"destination": "/pub/chat/message", "receipt": receipt}
            ws.send(frame("SEND", {**headers, "content-type": "application/json"}, body))
            while True:
                command, headers, _ = parse(ws.recv(timeout=10))
                if command == "ERROR":
                    raise AssertionError(f"ERROR frame while seeding: {headers}")
                if command == "RECEIPT" and headers.get("receipt-id") == receipt:
                    break
        ws.send(frame("DISCONNECT", {}))


def new_user(api: httpx.Client, prefix: str) -> tuple[str, str]:
    """Registers someone (blocks must not touch the demo accounts other tests use); returns
    (name, token)."""
    name = unique(prefix)
    api.post("/auth/register", json={"username": name, "password": STRONG_PASSWORD})
    return name, login(api, name, STRONG_PASSWORD)


def post_board(api: httpx.Client, token: str, title: str) -> dict:
    res = api.post("/boards", json={"title": title}, headers=auth(token))
    res.raise_for_status()
    return res.json()


def apply(api: httpx.Client, token: str, board_id: int) -> str:
    res = api.post(f"/boards/{board_id}/apply", headers=auth(token))
    res.raise_for_status()
    return res.json()["roomId"]
