"""What a conversation shows besides messages, across instances: read receipts, typing, and
unsending, none of which is stored as a message."""

from __future__ import annotations

import asyncio
import json

import httpx

from duochat_testing.chat import collect


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def next_of(client, kind: str, within: float = 5.0) -> dict:
    async with asyncio.timeout(within):
        while True:
            msg = await client.next_message(within)
            if msg.get("type") == kind:
                return msg


async def pair(chat):
    alice, ta = chat.user("alice")
    bob, tb = chat.user("bob")
    room = await chat.room(alice, bob)
    a = await chat.client(0, ta)
    b = await chat.client(1, tb)  # the other member on the other instance
    await a.subscribe(room)
    await b.subscribe(room)
    return room, (a, ta), (b, tb)


async def test_a_read_mark_reaches_the_other_member_live(chat) -> None:
    room, (a, ta), (b, tb) = await pair(chat)
    for i in range(3):
        await (await a.send(room, f"hi {i}"))
    talk = await collect(b, 3)
    last = talk[-1]["id"]
    async with httpx.AsyncClient(base_url=chat.procs[1].http) as http:
        reply = await http.post(
            f"/chat/rooms/{room}/read", json={"lastReadId": last}, headers=auth(tb)
        )
        assert reply.status_code == 204
    read = await next_of(a, "READ")
    assert read == {
        "type": "READ",
        "roomId": room,
        "sender": "bob",
        "lastReadId": last,
        "_subscription": read["_subscription"],
    }
    assert "id" not in read  # a signal, not a message
    async with httpx.AsyncClient(base_url=chat.procs[0].http) as http:
        page = (await http.get(f"/chat/rooms/{room}/messages", headers=auth(ta))).json()
        # Reading the same mark again tells no one.
        await http.post(f"/chat/rooms/{room}/read", json={"lastReadId": last}, headers=auth(tb))
    assert page["otherLastReadId"] == last
    await asyncio.sleep(0.5)
    assert not [m for m in list(a.messages._queue) if m.get("type") == "READ"]


async def test_typing_reaches_the_other_member_and_is_never_stored(chat) -> None:
    room, (a, ta), (b, _) = await pair(chat)
    body = json.dumps({"roomId": room}).encode()
    for receipt in ("t1", "t2"):  # the second, within a second, is folded into the first
        await a.send_frame("SEND", {"destination": "/pub/chat/typing", "receipt": receipt}, body)
    typing = await next_of(b, "TYPING")
    assert (typing["roomId"], typing["sender"]) == (room, "alice")
    await asyncio.sleep(0.5)
    assert not [m for m in list(b.messages._queue) if m.get("type") == "TYPING"]
    async with httpx.AsyncClient(base_url=chat.procs[0].http) as http:
        page = (await http.get(f"/chat/rooms/{room}/messages", headers=auth(ta))).json()
    assert {m["type"] for m in page["items"]} <= {"ENTER"}


async def test_unsend_leaves_a_tombstone_and_tells_the_other_member(chat) -> None:
    room, (a, ta), (b, tb) = await pair(chat)
    await (await a.send(room, "oops, wrong room"))
    (sent,) = await collect(b, 1)
    async with httpx.AsyncClient(base_url=chat.procs[1].http) as http:
        # Only its sender may unsend it; a message that is not there is a 404.
        not_yours = await http.delete(f"/chat/rooms/{room}/messages/{sent['id']}", headers=auth(tb))
        assert not_yours.status_code == 403 and not_yours.json()["code"] == "not_your_message"
        missing = await http.delete(f"/chat/rooms/{room}/messages/999999", headers=auth(ta))
        assert missing.status_code == 404
        gone = await http.delete(f"/chat/rooms/{room}/messages/{sent['id']}", headers=auth(ta))
        assert gone.status_code == 204
        again = await http.delete(f"/chat/rooms/{room}/messages/{sent['id']}", headers=auth(ta))
        assert again.status_code == 204
        page = (await http.get(f"/chat/rooms/{room}/messages", headers=auth(tb))).json()
    deleted = await next_of(b, "DELETED")
    assert (deleted["roomId"], deleted["id"]) == (room, sent["id"])
    (tomb,) = [m for m in page["items"] if m["id"] == sent["id"]]
    assert tomb["deleted"] is True and tomb["message"] == "" and tomb["createdAt"]
    # A replay brings the tombstone, not the text.
    late = await chat.client(0, tb)
    await late.subscribe(room, sub_id="again", since=sent["id"] - 1)
    (replayed,) = await collect(late, 1)
    assert replayed["deleted"] is True and replayed["message"] == ""


async def test_a_message_can_be_unsent_for_five_minutes_only(chat, database_url) -> None:
    from sqlalchemy import create_engine, text

    room, (a, ta), _ = await pair(chat)
    await (await a.send(room, "old news"))
    (sent,) = await collect(a, 1)
    engine = create_engine(database_url.replace("mysql://", "mysql+pymysql://"))
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE chat_messages SET created_at = created_at - INTERVAL 6 MINUTE"
                    " WHERE room_id = :r AND id = :i"
                ),
                {"r": room, "i": sent["id"]},
            )
    finally:
        engine.dispose()
    async with httpx.AsyncClient(base_url=chat.procs[0].http) as http:
        late = await http.delete(f"/chat/rooms/{room}/messages/{sent['id']}", headers=auth(ta))
    assert late.status_code == 409 and late.json()["code"] == "too_late"
