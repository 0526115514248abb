"""Nobody reads or writes a room that is not theirs; the sender is who the token says."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from duochat_common.testing import TestSigner
from duochat_testing.chat import StompClient, StompError, collect


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("kind", ["missing", "garbage", "expired", "foreign", "refresh"])
async def test_no_connect_without_a_valid_token(chat, kind: str) -> None:
    user, _ = chat.user()
    token = {
        "missing": None,
        "garbage": "not-a-jwt",
        "expired": chat.signer.token(user.id, user.username, ttl=-60),
        "foreign": TestSigner().token(user.id, user.username),  # signed by another key
        "refresh": chat.signer.token(user.id, user.username, typ="refresh"),
    }[kind]
    with pytest.raises(StompError) as err:
        await StompClient.open(chat.procs[0].ws, token)
    assert err.value.frame.command == "ERROR"
    assert err.value.frame.get("message")


async def test_bearer_header_connects(chat) -> None:
    user, token = chat.user()
    client = await chat.client(1, None, headers={"Authorization": f"Bearer {token}"})
    assert client.connected.result().get("user-name") == user.username


async def test_no_subscribe_or_send_in_someone_elses_room(chat) -> None:
    alice, _ = chat.user()
    bob, _ = chat.user()
    _mallory, tm = chat.user()
    room = await chat.room(alice, bob)

    m = await chat.client(0, tm)
    with pytest.raises(StompError, match="not a member"):
        await m.subscribe(room)
    await asyncio.wait_for(m.closed.wait(), 5)  # ERROR, then the server closes

    m = await chat.client(1, tm)
    with pytest.raises(StompError, match="not a member"):
        await (await m.send(room, "let me in"))
    await asyncio.wait_for(m.closed.wait(), 5)

    m = await chat.client(1, tm)
    with pytest.raises(StompError, match="not a member"):
        await m.subscribe("no-such-room")


async def test_rest_is_for_members_only(chat) -> None:
    alice, ta = chat.user()
    bob, _ = chat.user()
    _mallory, tm = chat.user()
    room = await chat.room(alice, bob)
    paths = [
        ("GET", f"/chat/rooms/{room}/messages"),
        ("GET", f"/chat/rooms/{room}/presence"),
        ("POST", f"/chat/rooms/{room}/read"),
    ]
    async with httpx.AsyncClient(base_url=chat.procs[0].http) as http:
        for method, path in paths:
            body = {"lastReadId": 0} if method == "POST" else None
            anon = await http.request(method, path, json=body)
            assert anon.status_code == 401, path
            other = await http.request(method, path, json=body, headers=auth(tm))
            assert other.status_code == 403, path
            assert other.json()["code"] == "not_a_member"
            owner = await http.request(method, path, json=body, headers=auth(ta))
            assert owner.status_code in (200, 204), (path, owner.text)
        for path in ("/chat/rooms/unread", "/chat/rooms/latest"):
            assert (await http.get(path)).status_code == 401
            assert room not in (await http.get(path, headers=auth(tm))).json()
            assert (await http.get(path, headers=auth(ta))).status_code == 200


async def test_the_sender_is_always_the_authenticated_user(chat) -> None:
    alice, ta = chat.user("alice_real")
    bob, tb = chat.user("bob_real")
    room = await chat.room(alice, bob)
    a = await chat.client(0, ta)
    b = await chat.client(1, tb)
    await b.subscribe(room, since=0)
    await a.subscribe(room, since=0)
    body = {"type": "TALK", "roomId": room, "message": "hi", "sender": "bob_real"}
    await a.send_frame(
        "SEND", {"destination": "/pub/chat/message", "receipt": "x"}, json.dumps(body).encode()
    )
    (msg,) = await collect(b, 1)
    assert msg["sender"] == "alice_real"
    assert msg["message"] == "hi"


async def test_socket_closes_when_its_token_expires(chat) -> None:
    user, _ = chat.user()
    token = chat.signer.token(user.id, user.username, ttl=2)
    client = await chat.client(0, token)
    await asyncio.wait_for(client.closed.wait(), 10)
    assert "token expired" in (client.errors[-1].get("message") or "")
