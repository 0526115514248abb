"""Leaving and blocking, as boards announces them (``room.left``, ``user.blocked``), reach both
chat instances: the members sit on different instances, the event is consumed by whichever
instance's consumer takes it, and the room's owner (either one) refuses every SEND after."""

from __future__ import annotations

import asyncio

import httpx

from duochat_common.events.bus import EventBus
from duochat_common.events.schemas import (
    BOARDS_STREAM,
    RoomDetail,
    RoomLeft,
    UserBlocked,
    UserRef,
)
from duochat_testing.chat import StompError, collect


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def detail(chat, room_id: str) -> RoomDetail:
    room = chat.stub_room(room_id)
    return RoomDetail(
        room_id=room.room_id,
        board_id=room.board_id,
        board_title=room.title,
        writer=room.writer,
        applicant=room.applicant,
    )


async def publish(chat, *events) -> None:
    bus = EventBus(chat.redis)
    for event in events:
        await bus.publish(f"{chat.prefix}{BOARDS_STREAM}", event.envelope())


async def refused(chat, proc: int, token: str, room_id: str, within: float = 15.0) -> str:
    """Send on a socket of its own (an ERROR closes it) until the room refuses (the event is
    consumed asynchronously); the ERROR's text."""
    deadline = asyncio.get_running_loop().time() + within
    client = await chat.client(proc, token)
    n = 0
    while True:
        n += 1
        fut = await client.send(room_id, f"still here? {n}")
        assert fut is not None
        try:
            await asyncio.wait_for(fut, 10)
        except StompError as exc:
            return str(exc)
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the room still takes messages")
        await asyncio.sleep(0.1)


async def history(chat, room_id: str, token: str, proc: int = 0) -> list[dict]:
    async with httpx.AsyncClient(base_url=chat.procs[proc].http) as http:
        page = await http.get(f"/chat/rooms/{room_id}/messages", headers=auth(token))
    assert page.status_code == 200, page.text
    return list(page.json()["items"])


async def test_a_member_who_leaves_is_announced_on_both_instances_and_the_room_closes(chat):
    writer, tw = chat.user("wendy")
    applicant, ta = chat.user("abe")
    room = await chat.room(writer, applicant)
    w = await chat.client(0, tw)
    a = await chat.client(1, ta)
    await w.subscribe(room, since=0)
    await a.subscribe(room, since=0)
    await (await a.send(room, "hi, are we on?"))
    await collect(w, 1)

    left = RoomLeft(room=detail(chat, room), by=applicant)
    await publish(chat, left, left)  # a second delivery posts nothing

    (line,) = await collect(w, 1, kind="SYSTEM")
    assert line["sender"] == "system"
    assert line["message"] == "abe left this chat. It is now read-only."
    # Clients word the line in their own language from its code and parameters.
    assert (line["code"], line["params"]) == ("left", {"user": "abe"})
    assert (await collect(a, 1, kind="SYSTEM"))[0]["id"] == line["id"]
    # The line is the other member's news: it counts as the writer's unread, not the leaver's.
    async with httpx.AsyncClient(base_url=chat.procs[1].http) as http:
        assert (await http.get("/chat/rooms/unread", headers=auth(tw))).json()[room] == 2
        assert (await http.get("/chat/rooms/unread", headers=auth(ta))).json()[room] == 0
    # Read-only for both, whichever instance the SEND comes in on.
    for proc, token in ((0, tw), (1, ta)):
        assert "read-only (a member left)" in await refused(chat, proc, token, room)
    await asyncio.sleep(0.5)
    stored = await history(chat, room, tw)
    assert [m["type"] for m in stored].count("SYSTEM") == 1
    assert [m["message"] for m in stored if m["type"] == "TALK"] == ["hi, are we on?"]
    assert [m for m in stored if m["type"] == "SYSTEM"] == [
        {k: v for k, v in line.items() if not k.startswith("_")}
    ]


async def test_a_block_closes_shared_rooms_on_both_instances_without_a_word(chat):
    blocker, tb = chat.user("bea")
    blocked, tx = chat.user("xan")
    mine = await chat.room(blocker, blocked)  # bea wrote the board, xan applied
    theirs = await chat.room(blocked, blocker)  # and the other way round
    unseen = await chat.room(blocker, blocked, announce=False)  # chat has not heard of it
    b = await chat.client(0, tb)
    x = await chat.client(1, tx)
    for room in (mine, theirs):
        await b.subscribe(room, sub_id=f"b-{room}", since=0)
        await x.subscribe(room, sub_id=f"x-{room}", since=0)
    await (await x.send(mine, "hello"))
    await collect(b, 1)

    await publish(
        chat,
        UserBlocked(
            blocker=blocker,
            blocked=blocked,
            version=1,
            rooms=[detail(chat, r) for r in (mine, theirs, unseen)],
        ),
    )

    for room in (mine, theirs):
        text = await refused(chat, 1, tx, room)
        assert text == "this room is read-only (it is closed)"  # nothing says "blocked"
        assert "read-only" in await refused(chat, 0, tb, room)
    # The room chat first heard of in the block is read-only from the start.
    assert "read-only" in await refused(chat, 1, tx, unseen)
    # Silent: no line was posted or delivered anywhere.
    await asyncio.sleep(0.5)
    for client in (b, x):
        seen = []
        while not client.messages.empty():
            seen.append(client.messages.get_nowait())
        assert [m for m in seen if m["type"] == "SYSTEM"] == []
    for room in (mine, theirs):
        assert [m["type"] for m in await history(chat, room, tx, proc=1)].count("SYSTEM") == 0


async def test_leaving_after_a_block_changes_nothing(chat):
    writer, tw = chat.user()
    applicant, _ = chat.user()
    room = await chat.room(writer, applicant)
    await publish(
        chat, UserBlocked(blocker=writer, blocked=applicant, version=1, rooms=[detail(chat, room)])
    )
    await refused(chat, 0, tw, room)
    await publish(chat, RoomLeft(room=detail(chat, room), by=UserRef(id=writer.id, username="x")))
    await asyncio.sleep(1.0)
    assert [m["type"] for m in await history(chat, room, tw)].count("SYSTEM") == 0
