"""Delivery across two chat processes: one order for both members, ids, receipts, REST views."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from duochat_testing.chat import collect


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_cross_instance_delivery_in_one_order(chat) -> None:
    alice, ta = chat.user("alice")
    bob, tb = chat.user("bob")
    room = await chat.room(alice, bob)
    a = await chat.client(0, ta)
    b = await chat.client(1, tb)
    await a.subscribe(room, since=0)
    await b.subscribe(room, since=0)

    receipts = []
    for i in range(25):  # both members at once, on different instances
        receipts.append(await a.send(room, f"a{i}"))
        receipts.append(await b.send(room, f"b{i}"))
    await asyncio.gather(*receipts)

    seen_a = await collect(a, 50)
    seen_b = await collect(b, 50)
    ids = [m["id"] for m in seen_a]
    assert ids == [m["id"] for m in seen_b]
    assert seen_a == seen_b
    assert ids == sorted(ids) and len(set(ids)) == 50
    # Each sender's own messages keep their send order.
    assert [m["message"] for m in seen_a if m["sender"] == "alice"] == [f"a{i}" for i in range(25)]
    assert [m["message"] for m in seen_b if m["sender"] == "bob"] == [f"b{i}" for i in range(25)]
    assert {m["userCount"] for m in seen_a} <= {1, 2}

    async with httpx.AsyncClient(base_url=chat.procs[1].http) as http:
        reply = await http.get(
            f"/chat/rooms/{room}/messages", params={"limit": 200}, headers=auth(ta)
        )
    page = reply.json()
    stored = [m for m in page["items"] if m["type"] == "TALK"]
    assert [m["id"] for m in stored] == ids
    assert stored == [{k: v for k, v in m.items() if k != "_subscription"} for m in seen_a]
    enters = [m for m in page["items"] if m["type"] == "ENTER"]
    assert sorted(m["sender"] for m in enters) == ["alice", "bob"]  # each first visit, once
    all_ids = [m["id"] for m in page["items"]]
    assert all_ids == list(range(1, len(all_ids) + 1))  # dense per room


async def test_a_senders_messages_keep_their_order_when_the_room_moves_under_them(chat) -> None:
    """Alice is alone on chat0, so chat0 owns the room; Bob subscribing on chat1 moves it to
    chat1 (the room is picked so) while Alice's SENDs are in flight, none awaited. Every message
    is stored once, and in the order she sent it: the router holds the later ones back until
    those sent before the move have settled, and no stale owner lets one overtake another."""
    for _ in range(5):  # the move lands at a different point each time
        alice, ta = chat.user("alice")
        bob, tb = chat.user("bob")
        room = await chat.room(alice, bob, owner="chat1")
        a = await chat.client(0, ta)
        await a.subscribe(room, since=0)
        b = await chat.client(1, tb)

        async def talk() -> list[Any]:
            receipts = []
            for i in range(40):
                receipts.append(await a.send(room, f"m{i}"))
                await asyncio.sleep(0.002)
            return await asyncio.gather(*receipts)

        sending = asyncio.create_task(talk())
        await asyncio.sleep(0.02)
        await b.subscribe(room, since=0)  # the room moves to chat1 now
        await sending
        seen = await collect(b, 40)
        assert [m["message"] for m in seen] == [f"m{i}" for i in range(40)]
        assert [m["id"] for m in seen] == sorted({m["id"] for m in seen})


TRICKY = [
    "it's a \"quote\" and a back\\slash \\' and 100% %s %(x)s",
    "'); DROP TABLE chat_messages; --",
    "한국어 메시지 😀 and \u200b zero width",
    "line one\nline two\ttab\r",
    "<script>alert(1)</script>",
]


async def test_any_text_is_stored_and_delivered_verbatim(chat) -> None:
    """The writer builds its SQL with the driver's escaping (mysql_batch): text that means
    something to SQL, to Python's % formatting or to HTML comes back exactly as sent."""
    alice, ta = chat.user("alice")
    bob, tb = chat.user("bob")
    room = await chat.room(alice, bob)
    a = await chat.client(0, ta)
    b = await chat.client(1, tb)
    await b.subscribe(room, since=0)
    await asyncio.gather(*[await a.send(room, text) for text in TRICKY])

    seen = await collect(b, len(TRICKY))
    assert [m["message"] for m in seen] == TRICKY
    async with httpx.AsyncClient(base_url=chat.procs[0].http) as http:
        reply = await http.get(f"/chat/rooms/{room}/messages", headers=auth(tb))
    assert [m["message"] for m in reply.json()["items"] if m["type"] == "TALK"] == TRICKY
