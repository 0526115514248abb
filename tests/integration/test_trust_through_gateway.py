"""Leave, block and mute end to end through nginx, every service its own process: boards
decides, chat and notify honour it through their projections of boards' events."""

from __future__ import annotations

import asyncio
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from duochat_embedded.localstack import LocalStack
from duochat_testing.chat import StompClient, StompError, collect
from tests.integration.conftest import OPERATOR
from tests.integration.flows import register_and_login
from tests.integration.test_notify_through_gateway import next_event, sse_events


@pytest.mark.timeout(600)
def test_leave_block_and_mute_reach_chat_and_notify(stack: LocalStack) -> None:
    # A loop of its own in a thread: the browser tests' sync Playwright keeps a loop running
    # in the main thread for the whole session.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, trust_story(stack)).result()


@pytest.mark.timeout(300)
def test_an_operator_reads_the_reported_messages_as_chat_stored_them(stack: LocalStack) -> None:
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, report_story(stack)).result()


def token(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


async def refused(ws_url: str, who: dict[str, str], room_id: str) -> str:
    """The ERROR a SEND gets once the room is read-only (events arrive asynchronously)."""
    async with asyncio.timeout(20):
        while True:
            client = await StompClient.open(ws_url, token(who))
            try:
                receipt = await client.send(room_id, "anyone?")
                assert receipt is not None
                await asyncio.wait_for(receipt, 10)
            except StompError as exc:
                return str(exc)
            finally:
                await client.close()
            await asyncio.sleep(0.2)


async def trust_story(stack: LocalStack) -> None:
    ws_url = stack.gateway_url.replace("http://", "ws://") + "/ws-stomp"
    with httpx.Client(base_url=stack.gateway_url, timeout=10) as sync:
        writer = register_and_login(sync, f"wri{uuid.uuid4().hex[:6]}")
        leaver = register_and_login(sync, f"lea{uuid.uuid4().hex[:6]}")
        pest = register_and_login(sync, f"pes{uuid.uuid4().hex[:6]}")
        board = sync.post("/boards", json={"title": "bouldering"}, headers=writer).json()
        left_room = sync.post(f"/boards/{board['id']}/apply", headers=leaver).json()["roomId"]
        pest_room = sync.post(f"/boards/{board['id']}/apply", headers=pest).json()["roomId"]
        assert sync.get(f"/boards/{board['id']}", headers=writer).json()["applicantCount"] == 2

    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
        ticket = (await client.post("/notify/ticket", headers=writer)).json()["ticket"]
        events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        async with client.stream("GET", "/notify/stream", params={"ticket": ticket}) as stream:
            reader = asyncio.create_task(sse_events(stream, events))
            w = await StompClient.open(ws_url, token(writer))
            try:
                await w.subscribe(left_room, since=0)
                # The applicant withdraws: the writer sees the line live and gets an alarm.
                left = await client.post(f"/boards/rooms/{left_room}/leave", headers=leaver)
                assert left.status_code == 200 and left.json()["status"] == "left"
                (line,) = await collect(w, 1, kind="SYSTEM", within=20)
                assert "left this chat" in line["message"]
                alarm = json.loads((await next_event(events, "left"))["data"])
                assert alarm["roomId"] == left_room
                assert "read-only (a member left)" in await refused(ws_url, leaver, left_room)

                # The pest writes; the writer, away, gets an alarm. Muting reads it, and
                # the pest's next message rings no bell.
                p = await StompClient.open(ws_url, token(pest))
                await p.subscribe(pest_room)
                await asyncio.wait_for(await p.send(pest_room, "first"), 10)
                first = json.loads((await next_event(events, "message"))["data"])
                assert first["roomId"] == pest_room
                muted = await client.put(f"/boards/rooms/{pest_room}/mute", headers=writer)
                assert muted.status_code == 200 and muted.json()["muted"] is True
                read = json.loads((await next_event(events, "read"))["data"])
                assert read["roomId"] == pest_room
                await asyncio.wait_for(await p.send(pest_room, "hey"), 10)
                await p.close()
                pest_id = (await client.get("/auth/me", headers=pest)).json()["id"]
                blocked = await client.post(
                    "/boards/blocks", json={"userId": pest_id}, headers=writer
                )
                assert blocked.status_code == 201
                text = await refused(ws_url, pest, pest_room)
                assert text == "this room is read-only (it is closed)"
                seen = await client.get(f"/boards/rooms/{pest_room}", headers=pest)
                assert seen.json()["status"] == "closed"
                gone = await client.get(f"/boards/{board['id']}", headers=pest)
                assert gone.status_code == 404
                await asyncio.sleep(1.0)
                # Neither the muted message nor anything after the block rang the bell.
                while not events.empty():
                    event = events.get_nowait()
                    if event.get("event") == "message":
                        assert json.loads(event["data"])["roomId"] != pest_room
            finally:
                await w.close()
                reader.cancel()
        listed = (await client.get("/notify/alarms", headers=writer)).json()["items"]
        # Muted, not unread-less: chat still counts both of the pest's messages for the writer.
        unread = (await client.get("/chat/rooms/unread", headers=writer)).json()
        assert unread[pest_room] == 2
        pests = [a for a in listed if a["kind"] == "message" and a["roomId"] == pest_room]
        assert [(a["preview"], a["read"]) for a in pests] == [("first", True)]
        rooms = (await client.get("/boards/rooms", headers=writer)).json()["items"]
        by_id = {r["roomId"]: r for r in rooms}
        assert by_id[pest_room]["status"] == "blocked" and by_id[pest_room]["muted"] is True
        live = (await client.get("/boards/rooms?ended=exclude", headers=writer)).json()["items"]
        assert {r["roomId"] for r in live}.isdisjoint({left_room, pest_room})
        board_now = (await client.get(f"/boards/{board['id']}", headers=writer)).json()
        assert board_now["applicantCount"] == 0


async def report_story(stack: LocalStack) -> None:
    """boards copies the named messages from chat when the report is filed: the operator reads
    their text, an unsend afterwards does not erase it, the reporter names ids and cannot send
    text, and only an operator lists reports (anonymous, the reported user, the reporter and an
    operator asked)."""
    ws_url = stack.gateway_url.replace("http://", "ws://") + "/ws-stomp"
    with httpx.Client(base_url=stack.gateway_url, timeout=10) as sync:
        writer = register_and_login(sync, f"rep{uuid.uuid4().hex[:6]}")
        spammer = register_and_login(sync, f"spm{uuid.uuid4().hex[:6]}")
        operator = register_and_login(sync, OPERATOR)
        board = sync.post("/boards", json={"title": "chess"}, headers=writer).json()
        room = sync.post(f"/boards/{board['id']}/apply", headers=spammer).json()["roomId"]
    s = await StompClient.open(ws_url, token(spammer))
    try:
        await s.subscribe(room, since=0)
        for text in ("buy followers at example.com", "send 50 to my account"):
            await asyncio.wait_for(await s.send(room, text), 10)
        spam = await collect(s, 2)
    finally:
        await s.close()
    ids = [m["id"] for m in spam]
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
        forged = {"reason": "scam", "roomId": room, "messageIds": ids}
        forged["messages"] = [{"id": ids[0], "message": "words never said"}]
        assert (
            await client.post("/boards/reports", json=forged, headers=writer)
        ).status_code == 422
        body = {"reason": "scam", "roomId": room, "messageIds": [*ids, 999]}
        filed = await client.post("/boards/reports", json=body, headers=writer)
        assert filed.status_code == 201, filed.text
        # The spammer unsends one afterwards: chat erases it, the report keeps its copy.
        gone = await client.delete(f"/chat/rooms/{room}/messages/{ids[1]}", headers=spammer)
        assert gone.status_code == 204
        history = (await client.get(f"/chat/rooms/{room}/messages", headers=writer)).json()
        assert [m.get("deleted", False) for m in history["items"] if m["id"] in ids] == [
            False,
            True,
        ]

        spammer_id = (await client.get("/auth/me", headers=spammer)).json()["id"]
        asked = {"userId": spammer_id}
        anonymous = await client.get("/boards/reports", params=asked)
        assert anonymous.status_code == 401
        for who in (writer, spammer):  # the reporter (the report's owner) and the reported
            refused = await client.get("/boards/reports", params=asked, headers=who)
            assert refused.status_code == 403 and refused.json()["code"] == "not_operator"
        listed = await client.get("/boards/reports", params=asked, headers=operator)
        assert listed.status_code == 200, listed.text
        (report,) = listed.json()["items"]
        assert report["messageIds"] == [*ids, 999]
        assert [(m["id"], m["sender"], m["message"], m["deleted"]) for m in report["messages"]] == [
            (ids[0], spam[0]["sender"], "buy followers at example.com", False),
            (ids[1], spam[0]["sender"], "send 50 to my account", False),
        ]
