"""Chat and notify end to end through nginx: a message to someone who is out of the room
reaches their open SSE stream, waits unread in /notify/alarms, and opening the room reads it."""

from __future__ import annotations

import asyncio
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from duochat_embedded.localstack import LocalStack
from duochat_testing.chat import StompClient, collect
from tests.integration.flows import register_and_login


async def sse_events(response: httpx.Response, queue: asyncio.Queue[dict[str, Any]]) -> None:
    event: dict[str, Any] = {}
    async for line in response.aiter_lines():
        if line == "":
            if "data" in event:
                await queue.put(event)
            event = {}
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            event[name] = value.removeprefix(" ")


async def next_event(queue: asyncio.Queue[dict[str, Any]], kind: str) -> dict[str, Any]:
    async with asyncio.timeout(15):
        while True:
            event = await queue.get()
            if event.get("event") == kind:
                return event


@pytest.mark.timeout(600)
def test_message_to_an_absent_user_is_notified_and_read_on_opening(stack: LocalStack) -> None:
    # A loop of its own in a thread: the browser tests' sync Playwright keeps a loop running
    # in the main thread for the whole session.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, absent_user_story(stack)).result()


async def absent_user_story(stack: LocalStack) -> None:
    with httpx.Client(base_url=stack.gateway_url, timeout=10) as sync:
        happy = register_and_login(sync, f"happy{uuid.uuid4().hex[:6]}")
        angry = register_and_login(sync, f"angry{uuid.uuid4().hex[:6]}")
        board = sync.post("/boards", json={"title": "duo queue tonight"}, headers=happy).json()
        room = sync.post(f"/boards/{board['id']}/apply", headers=angry).json()
    room_id = room["roomId"]
    ws_url = stack.gateway_url.replace("http://", "ws://") + "/ws-stomp"

    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
        ticket = (await client.post("/notify/ticket", headers=happy)).json()["ticket"]
        events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        async with client.stream("GET", "/notify/stream", params={"ticket": ticket}) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            reader = asyncio.create_task(sse_events(stream, events))
            try:
                # happydaddy is not in the room; angrydaddy writes to him.
                angry_token = angry["Authorization"].removeprefix("Bearer ")
                writer = await StompClient.open(ws_url, angry_token)
                await writer.subscribe(room_id)
                receipt = await writer.send(room_id, "are you there?")
                assert receipt is not None
                await asyncio.wait_for(receipt, 10)
                sent = (await collect(writer, 1))[0]

                event = await next_event(events, "message")
                alarm = json.loads(event["data"])
                assert event["id"]
                assert alarm["kind"] == "message" and alarm["roomId"] == room_id
                assert alarm["preview"] == "are you there?" and alarm["read"] is False
                assert alarm["from"]["username"] == room["applicant"]["username"]
                await writer.close()
            finally:
                reader.cancel()

        listed = (await client.get("/notify/alarms", headers=happy)).json()
        assert listed["unreadCount"] >= 1
        assert any(a["roomId"] == room_id and not a["read"] for a in listed["items"])

        # happydaddy opens the room: he subscribes and marks what he has seen.
        reader_client = await StompClient.open(
            ws_url, happy["Authorization"].removeprefix("Bearer ")
        )
        await reader_client.subscribe(room_id)
        marked = await client.post(
            f"/chat/rooms/{room_id}/read", json={"lastReadId": sent["id"]}, headers=happy
        )
        assert marked.status_code == 204
        async with asyncio.timeout(15):
            while True:
                listed = (await client.get("/notify/alarms", headers=happy)).json()
                if not any(a["roomId"] == room_id and not a["read"] for a in listed["items"]):
                    break
                await asyncio.sleep(0.2)
        assert listed["unreadCount"] == 0
        await reader_client.close()
