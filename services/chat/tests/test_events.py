"""What chat tells other services on its events stream (notify reads these)."""

from __future__ import annotations

import asyncio

import httpx

from duochat_common.events.bus import stream_events
from duochat_common.events.envelope import Envelope
from duochat_common.events.schemas import CHAT_STREAM, ChatMessageSent, ChatRoomRead


async def events_for(chat, room: str, kind: str, count: int) -> list[Envelope]:
    async with asyncio.timeout(10):
        while True:
            found = await stream_events(chat.redis, f"{chat.prefix}{CHAT_STREAM}")
            found = [e for e in found if e.type == kind and e.data.get("roomId") == room]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.05)


async def test_message_sent_says_who_is_in_the_room(chat) -> None:
    alice, ta = chat.user("ev_alice")
    bob, tb = chat.user("ev_bob")
    room = await chat.room(alice, bob)
    a = await chat.client(0, ta)
    await a.subscribe(room)
    await (await a.send(room, "bob is away"))
    b = await chat.client(1, tb)
    await b.subscribe(room)
    await asyncio.sleep(1.2)  # presence snapshots are cached for up to a second
    await (await a.send(room, "bob is here"))
    sent = [ChatMessageSent.parse(e) for e in await events_for(chat, room, ChatMessageSent.TYPE, 4)]
    talks = {e.preview: e for e in sent if e.type == "TALK"}
    away, here = talks["bob is away"], talks["bob is here"]
    assert away.sender.id == alice.id and away.sender.username == "ev_alice"
    assert [(r.id, r.in_room) for r in away.recipients] == [(bob.id, False)]
    assert [(r.id, r.in_room) for r in here.recipients] == [(bob.id, True)]
    assert here.message_id > away.message_id

    async with httpx.AsyncClient(base_url=chat.procs[0].http) as http:
        reply = await http.post(
            f"/chat/rooms/{room}/read",
            json={"lastReadId": here.message_id},
            headers={"Authorization": f"Bearer {tb}"},
        )
    assert reply.status_code == 204
    (read,) = [ChatRoomRead.parse(e) for e in await events_for(chat, room, ChatRoomRead.TYPE, 1)]
    assert (read.user.id, read.last_read_id) == (bob.id, here.message_id)
