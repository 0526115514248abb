"""Rooms as boards decides them (events and the HTTP lookup), and the REST views of a room."""

from __future__ import annotations

import asyncio

import httpx

from duochat_common.events.bus import EventBus
from duochat_common.events.schemas import BOARDS_STREAM, BoardClosed, BoardMatched, RoomRef
from duochat_testing.chat import collect


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_unannounced_room_is_asked_of_boards_once(chat) -> None:
    alice, ta = chat.user()
    bob, tb = chat.user()
    room = await chat.room(alice, bob, announce=False)
    before = chat.stub.lookups
    a = await chat.client(0, ta)
    await a.subscribe(room)
    await (await a.send(room, "hello"))
    async with httpx.AsyncClient(base_url=chat.procs[0].http) as http:
        assert (await http.get(f"/chat/rooms/{room}/messages", headers=auth(ta))).status_code == 200
    assert chat.stub.lookups - before == 1  # cached in the projection after the first answer
    async with httpx.AsyncClient(base_url=chat.procs[1].http) as http:
        page = (await http.get(f"/chat/rooms/{room}/messages", headers=auth(tb))).json()
    assert [m["message"] for m in page["items"] if m["type"] == "TALK"] == ["hello"]
    assert chat.stub.lookups - before == 1  # the other instance read the projection table


async def test_match_posts_system_message_and_makes_rejected_rooms_read_only(chat) -> None:
    writer, tw = chat.user("writer")
    winner, twin = chat.user()
    loser, tl = chat.user()
    # Owned by different instances: whichever takes the event forwards one line (with its
    # code and parameters) to the other.
    won = await chat.room(writer, winner, owner="chat0")
    lost = await chat.room(writer, loser, owner="chat1")
    w = await chat.client(0, tw)
    lo = await chat.client(1, tl)
    await w.subscribe(lost, sub_id="lost", since=0)
    await lo.subscribe(lost, since=0)
    board_id = chat.stub_room(lost).board_id
    event = BoardMatched(
        board_id=board_id,
        board_title="a board",
        writer=writer,
        matched=RoomRef(room_id=won, applicant=winner),
        rejected=[RoomRef(room_id=lost, applicant=loser)],
    )
    bus = EventBus(chat.redis)
    stream = f"{chat.prefix}{BOARDS_STREAM}"
    await bus.publish(stream, event.envelope())
    await bus.publish(stream, event.envelope())  # a second delivery of the news posts nothing
    (system,) = await collect(lo, 1, kind="SYSTEM")
    assert system["sender"] == "system"
    assert system["message"].startswith("writer matched with someone else this time.")
    assert (system["code"], system["params"]) == ("rejected", {"writer": "writer"})
    assert (await collect(w, 1, kind="SYSTEM")) == [{**system, "_subscription": "lost"}]
    # The line is the rejected applicant's news, not the writer's unread.
    async with httpx.AsyncClient(base_url=chat.procs[0].http) as http:
        mine = (await http.get("/chat/rooms/unread", headers=auth(tw))).json()
        theirs = (await http.get("/chat/rooms/unread", headers=auth(tl))).json()
    assert mine.get(lost, 0) == 0 and theirs[lost] == 1

    with_error = await chat.client(1, tl)
    fut = await with_error.send(lost, "but why")
    try:
        await fut
        raise AssertionError("a rejected room must be read-only")
    except Exception as exc:
        assert "read-only" in str(exc)
    # The matched pair is told in its room, with a next step, and goes on talking.
    win = await chat.client(0, twin)
    await win.subscribe(won, since=0)
    (pair,) = await collect(win, 1, kind="SYSTEM")
    assert pair["message"].startswith(f'writer and {winner.username} matched on "a board"')
    names = {"writer": "writer", "applicant": winner.username, "title": "a board"}
    assert (pair["code"], pair["params"]) == ("matched", names)
    await (await win.send(won, "see you at 7"))
    async with httpx.AsyncClient(base_url=chat.procs[0].http) as http:
        page = (await http.get(f"/chat/rooms/{lost}/messages", headers=auth(tl))).json()
    (stored,) = [m for m in page["items"] if m["type"] == "SYSTEM"]
    assert (stored["code"], stored["params"]) == ("rejected", {"writer": "writer"})

    closed = BoardClosed(
        board_id=board_id,
        board_title="a board",
        writer=writer,
        rooms=[RoomRef(room_id=won, applicant=winner), RoomRef(room_id=lost, applicant=loser)],
    )
    await bus.publish(stream, closed.envelope())
    (bye,) = await collect(w, 1, kind="SYSTEM")
    assert "closed the board" in bye["message"]
    assert (bye["code"], bye["params"]) == ("closed", {"writer": "writer", "title": "a board"})
    fut = await win.send(won, "hello?")
    try:
        await fut
        raise AssertionError("a closed room must be read-only")
    except Exception as exc:
        assert "read-only" in str(exc)


async def test_unread_read_marks_latest_and_presence(chat) -> None:
    alice, ta = chat.user("ann")
    bob, tb = chat.user("ben")
    room = await chat.room(alice, bob)
    a = await chat.client(0, ta)
    await a.subscribe(room)
    for i in range(3):
        await (await a.send(room, f"m{i}"))
    async with httpx.AsyncClient(base_url=chat.procs[1].http) as http:
        unread = (await http.get("/chat/rooms/unread", headers=auth(tb))).json()
        assert unread[room] == 3
        assert (await http.get("/chat/rooms/unread", headers=auth(ta))).json()[room] == 0
        latest = (await http.get("/chat/rooms/latest", headers=auth(tb))).json()[room]
        assert latest["message"] == "m2"
        page = (await http.get(f"/chat/rooms/{room}/messages", headers=auth(tb))).json()
        ids = [m["id"] for m in page["items"]]
        assert latest["id"] == ids[-1]
        second = ids[-2]
        r = await http.post(
            f"/chat/rooms/{room}/read", json={"lastReadId": second}, headers=auth(tb)
        )
        assert r.status_code == 204
        assert (await http.get("/chat/rooms/unread", headers=auth(tb))).json()[room] == 1
        # Marks never move back, and cannot run ahead of the room.
        await http.post(f"/chat/rooms/{room}/read", json={"lastReadId": 1}, headers=auth(tb))
        assert (await http.get("/chat/rooms/unread", headers=auth(tb))).json()[room] == 1
        await http.post(f"/chat/rooms/{room}/read", json={"lastReadId": 10**9}, headers=auth(tb))
        assert (await http.get("/chat/rooms/unread", headers=auth(tb))).json()[room] == 0
        bad = await http.post(f"/chat/rooms/{room}/read", json={"lastReadId": -1}, headers=auth(tb))
        assert bad.status_code == 422
        # Paging: before/after/limit, ascending, hasMore.
        first = (
            await http.get(f"/chat/rooms/{room}/messages", params={"limit": 2}, headers=auth(tb))
        ).json()
        assert [m["id"] for m in first["items"]] == ids[-2:] and first["hasMore"]
        older = (
            await http.get(
                f"/chat/rooms/{room}/messages",
                params={"limit": 2, "before": ids[-2]},
                headers=auth(tb),
            )
        ).json()
        assert [m["id"] for m in older["items"]] == ids[-4:-2]
        newer = (
            await http.get(
                f"/chat/rooms/{room}/messages",
                params={"after": ids[0], "limit": 2},
                headers=auth(tb),
            )
        ).json()
        assert [m["id"] for m in newer["items"]] == ids[1:3] and newer["hasMore"]

        presence = (await http.get(f"/chat/rooms/{room}/presence", headers=auth(tb))).json()
        assert presence == {"roomId": room, "members": ["ann"]}  # ann is subscribed on chat0
        b = await chat.client(1, tb)
        await b.subscribe(room)
        presence = (await http.get(f"/chat/rooms/{room}/presence", headers=auth(ta))).json()
        assert presence["members"] == ["ann", "ben"]
        await b.close()
        await asyncio.sleep(0.5)
        presence = (await http.get(f"/chat/rooms/{room}/presence", headers=auth(ta))).json()
        assert presence["members"] == ["ann"]


async def test_later_visits_are_announced_not_stored(chat) -> None:
    alice, ta = chat.user("amy")
    bob, tb = chat.user("bo")
    room = await chat.room(alice, bob)
    a = await chat.client(0, ta)
    await a.subscribe(room, since=0)
    b = await chat.client(1, tb)
    await b.subscribe(room)
    mine, enter = await collect(a, 2, kind="ENTER")  # first visits: stored, with ids
    assert (mine["sender"], mine["userCount"]) == ("amy", 1)
    assert (enter["sender"], enter["userCount"]) == ("bo", 2)
    await b.close()
    quit_ = await anext_transient(a, "QUIT")
    assert quit_["sender"] == "bo" and quit_["id"] is None and quit_["userCount"] == 1
    b = await chat.client(1, tb)
    await b.subscribe(room)
    again = await anext_transient(a, "ENTER")
    assert again["sender"] == "bo" and again["id"] is None and again["userCount"] == 2
    async with httpx.AsyncClient(base_url=chat.procs[0].http) as http:
        page = (await http.get(f"/chat/rooms/{room}/messages", headers=auth(ta))).json()
    assert [(m["type"], m["sender"]) for m in page["items"]] == [("ENTER", "amy"), ("ENTER", "bo")]


async def anext_transient(client, kind: str) -> dict:
    async with asyncio.timeout(10):
        while True:
            msg = await client.messages.get()
            if msg["type"] == kind and msg["id"] is None:
                return msg


async def test_an_announcement_arrives_once_on_the_same_instance(chat) -> None:
    # Local subscribers used to get a transient ENTER/QUIT twice: delivered at once, and again
    # when the instance read its own fan-out entry back.
    alice, ta = chat.user("cat")
    bob, tb = chat.user("dan")
    room = await chat.room(alice, bob)
    a = await chat.client(0, ta)
    await a.subscribe(room, since=0)
    b = await chat.client(0, tb)
    await b.subscribe(room)
    await collect(a, 2, kind="ENTER")
    await b.close()
    await anext_transient(a, "QUIT")
    b = await chat.client(0, tb)
    await b.subscribe(room)
    await anext_transient(a, "ENTER")
    await asyncio.sleep(1.0)
    extra = []
    while not a.messages.empty():
        extra.append(a.messages.get_nowait())
    assert [m for m in extra if m["id"] is None] == []
