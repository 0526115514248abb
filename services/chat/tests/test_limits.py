"""Limits and bad input: an ERROR frame with a clear message, then the socket closes;
the server keeps serving everyone else."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from websockets.asyncio.client import connect

from duochat_testing.chat import StompClient, StompError


async def expect_error(client: StompClient, needle: str) -> str:
    await asyncio.wait_for(client.closed.wait(), 10)
    assert client.errors, "expected an ERROR frame"
    message = client.errors[-1].get("message") or ""
    assert needle in message, message
    return message


async def test_oversized_frame(chat) -> None:
    _user, token = chat.user()
    client = await chat.client(0, token)
    await client.send_frame("SEND", {"destination": "/pub/chat/message"}, b"x" * 20_000)
    await expect_error(client, "frame larger than")


async def test_message_too_long(chat) -> None:
    alice, ta = chat.user()
    bob, _ = chat.user()
    room = await chat.room(alice, bob)
    client = await chat.client(0, ta)
    await client.send(room, "y" * 1001, receipt=False)
    await expect_error(client, "message too long")


async def test_send_flood(chat) -> None:
    alice, ta = chat.user()
    bob, _ = chat.user()
    room = await chat.room(alice, bob)
    client = await chat.client(1, ta)
    for i in range(150):  # burst 100, 50/s
        if client.closed.is_set():
            break
        await client.send(room, f"m{i}", receipt=False)
    await expect_error(client, "too many messages")


async def test_too_many_subscriptions(chat) -> None:
    alice, ta = chat.user()
    bob, _ = chat.user()
    rooms = [await chat.room(alice, bob) for _ in range(21)]
    client = await chat.client(0, ta)
    for i, room in enumerate(rooms[:20]):
        await client.subscribe(room, sub_id=f"s{i}")
    with pytest.raises(StompError, match="too many subscriptions"):
        await client.subscribe(rooms[20], sub_id="s20")


async def test_unauthenticated_connection_times_out(chat) -> None:
    async with connect(chat.procs[0].ws, subprotocols=["v12.stomp"]) as ws:  # type: ignore[list-item]
        started = asyncio.get_running_loop().time()
        frame = await asyncio.wait_for(ws.recv(), 10)
        assert "ERROR" in frame and "no successful CONNECT" in frame
        await asyncio.wait_for(ws.wait_closed(), 5)
        assert asyncio.get_running_loop().time() - started < 5


@pytest.mark.parametrize(
    ("destination", "body", "needle"),
    [
        ("/pub/elsewhere", "{}", "unknown destination"),
        ("/pub/chat/message", "not json", "must be JSON"),
        ("/pub/chat/message", "[1]", "JSON object"),
        ("/pub/chat/message", '{"roomId": 5}', "roomId"),
        ("/pub/chat/message", '{"roomId": "r", "type": "SYSTEM"}', "type must be"),
    ],
)
async def test_bad_sends(chat, destination: str, body: str, needle: str) -> None:
    _user, token = chat.user()
    client = await chat.client(0, token)
    await client.send_frame("SEND", {"destination": destination}, body.encode())
    await expect_error(client, needle)


async def test_bad_subscribes(chat) -> None:
    alice, ta = chat.user()
    bob, _ = chat.user()
    room = await chat.room(alice, bob)
    for headers, needle in [
        ({"id": "1", "destination": "/topic/x"}, "unknown destination"),
        ({"id": "1", "destination": f"/sub/chat/room/{room}", "since": "-3"}, "since"),
        ({"destination": f"/sub/chat/room/{room}"}, "id headers"),
    ]:
        client = await chat.client(1, ta)
        await client.send_frame("SUBSCRIBE", headers)
        await expect_error(client, needle)


async def test_garbage_then_service_still_answers(chat) -> None:
    async with connect(chat.procs[1].ws) as ws:
        await ws.send(b"\x00\xff\xfe garbage")
        frame = await asyncio.wait_for(ws.recv(), 10)
        assert "ERROR" in (frame if isinstance(frame, str) else frame.decode())
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{chat.procs[1].http}/healthz")).status_code == 200
    _alice, ta = chat.user()
    client = await chat.client(1, ta)
    assert client.connected.done()


async def test_receipt_for_client_sent_enter(chat) -> None:
    """The old client SENT an ENTER itself; it still gets its receipt, and nothing breaks."""
    alice, ta = chat.user()
    bob, _ = chat.user()
    room = await chat.room(alice, bob)
    client = await chat.client(0, ta)
    body = json.dumps({"type": "ENTER", "roomId": room, "message": ""}).encode()
    await client.send_frame("SEND", {"destination": "/pub/chat/message", "receipt": "e1"}, body)
    async with asyncio.timeout(10):
        while not any(f.get("receipt-id") == "e1" for f in client.frames):
            await asyncio.sleep(0.02)
