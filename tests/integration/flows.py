"""The story every mode must tell, step by step, over plain HTTP."""

from __future__ import annotations

import uuid

import httpx


def register_and_login(client: httpx.Client, username: str) -> dict[str, str]:
    password = f"pw-{uuid.uuid4().hex[:12]}"
    created = client.post("/auth/register", json={"username": username, "password": password})
    assert created.status_code == 201, created.text
    return login(client, username, password)


def login(client: httpx.Client, username: str, password: str) -> dict[str, str]:
    response = client.post("/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['accessToken']}"}


def board_story(client: httpx.Client, writer: dict[str, str], applicant: dict[str, str]) -> None:
    """Writer posts, applicant applies (201, then 409), writer sees the room, /me is right."""
    me_w = client.get("/auth/me", headers=writer).json()
    me_a = client.get("/auth/me", headers=applicant).json()
    assert me_w["username"] != me_a["username"]

    board = client.post(
        "/boards", json={"title": "morning run", "content": "5 km by the river"}, headers=writer
    )
    assert board.status_code == 201, board.text
    board_id = board.json()["id"]
    assert board.json()["writer"] == me_w

    first = client.post(f"/boards/{board_id}/apply", headers=applicant)
    assert first.status_code == 201, first.text
    room = first.json()
    assert room["boardId"] == board_id and room["applicant"] == me_a and room["writer"] == me_w

    again = client.post(f"/boards/{board_id}/apply", headers=applicant)
    assert again.status_code == 409 and again.json()["code"] == "already_applied"

    rooms = client.get("/boards/rooms", params={"role": "writer"}, headers=writer)
    assert rooms.status_code == 200
    assert room["roomId"] in [r["roomId"] for r in rooms.json()["items"]]

    mine = client.get("/boards/rooms", params={"role": "applicant"}, headers=applicant)
    assert [r["roomId"] for r in mine.json()["items"]] == [room["roomId"]]
    assert client.get("/boards/rooms", params={"role": "writer"}).status_code == 401
