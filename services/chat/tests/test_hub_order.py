"""The hub's delivery order, in process, with a fake database and fake clients: entries that
arrive out of order, twice, or never reach each subscriber once and in id order; a hole is read
from the database; a replay with ``since`` meets the live stream with no gap and no repeat; and
signals go out as they come. The tests are sync (each runs its own event loop in a thread)."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Coroutine
from typing import Any

from duochat_chat.hub import GAP_WAIT_S, Hub, Subscription
from duochat_chat.messages import QUIT, TALK, Body, encode_body, left_text, transient

ROOM = "r1"
CREATED = "2026-01-05T09:30:00.000Z"


def run(coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` in a fresh event loop of its own thread (whatever loop this one runs)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coro).result(timeout=30)


def text(message_id: int) -> str:
    return encode_body(
        id=message_id,
        type=TALK,
        room_id=ROOM,
        sender="alice",
        message=f"m{message_id}",
        created_at=CREATED,
        user_count=2,
    ).text


def body(message_id: int) -> Body:
    return Body.of(text(message_id))


class Database:
    """The messages as the database holds them (the hub's ``Loader``)."""

    def __init__(self, *ids: int) -> None:
        self.rows: dict[int, str] = {i: text(i) for i in ids}
        self.reads = 0
        # Runs once, while a read is in flight (after its rows are taken).
        self.during_read: Callable[[], None] | None = None

    def store(self, *ids: int) -> None:
        self.rows.update((i, text(i)) for i in ids)

    async def after(self, room_id: str, after_id: int, limit: int) -> list[tuple[int, str]]:
        self.reads += 1
        rows = sorted((i, t) for i, t in self.rows.items() if i > after_id)[:limit]
        await asyncio.sleep(0)
        if self.during_read is not None:
            hook, self.during_read = self.during_read, None
            hook()
        return rows

    async def heads(self, room_ids: list[str]) -> dict[str, int]:
        return {room_id: max(self.rows) for room_id in room_ids if self.rows}


class Client:
    """A socket's session: what it was sent, in order."""

    def __init__(self) -> None:
        self.got: list[tuple[str, str]] = []

    def deliver(self, sub: Subscription, message_id: str, body: Body) -> None:
        self.got.append((message_id, body.text))

    def ids(self) -> list[str]:
        return [message_id for message_id, _ in self.got]


async def subscribe(
    hub: Hub, since: int | None = None, max_replay: int = 500
) -> tuple[Client, Subscription]:
    client = Client()
    sub = await hub.subscribe(client, "sub-0", ROOM, f"/sub/chat/room/{ROOM}", since, max_replay)
    return client, sub


def test_entries_out_of_order_and_twice_reach_every_subscriber_once_in_order() -> None:
    async def scenario() -> None:
        db = Database()
        hub = Hub(db)
        first, _ = await subscribe(hub)
        second, _ = await subscribe(hub)
        hub.on_entries(ROOM, [(2, body(2))])
        assert first.got == [], "2 waits for 1"
        hub.on_entries(ROOM, [(1, body(1))])
        hub.on_entries(ROOM, [(3, body(3)), (2, body(2))])
        hub.on_entries(ROOM, [(1, body(1))])
        await asyncio.sleep(GAP_WAIT_S * 3)
        for client in (first, second):
            assert client.got == [(str(i), text(i)) for i in (1, 2, 3)]
        assert db.reads == 0, "a hole the stream filled in time costs no database read"

    run(scenario())


def test_a_hole_the_stream_never_fills_is_read_from_the_database() -> None:
    async def scenario() -> None:
        db = Database()
        hub = Hub(db)
        client, _ = await subscribe(hub)
        db.store(1, 2, 3)  # committed by the owner; the entries of 1 and 2 were lost
        hub.on_entries(ROOM, [(3, body(3))])
        assert client.got == []
        await asyncio.sleep(GAP_WAIT_S * 5)
        assert client.ids() == ["1", "2", "3"]
        assert db.reads == 1

    run(scenario())


def test_a_lost_last_entry_is_read_back_by_the_second_sweep_that_sees_it() -> None:
    async def scenario() -> None:
        db = Database()
        hub = Hub(db)
        client, _ = await subscribe(hub)
        db.store(1)  # its entry is lost, and nothing comes after it
        await hub.sweep()
        await asyncio.sleep(GAP_WAIT_S * 2)
        assert client.got == [] and db.reads == 0, "behind once is traffic on its way"
        await hub.sweep()
        await asyncio.sleep(GAP_WAIT_S * 2)
        assert client.ids() == ["1"]
        await hub.sweep()
        assert hub.rooms[ROOM].stale_since is None, "caught up"

    run(scenario())


def test_since_replays_what_came_after_it_then_goes_live() -> None:
    async def scenario() -> None:
        db = Database(1, 2, 3, 4, 5)
        hub = Hub(db)
        client, sub = await subscribe(hub, since=2)
        assert client.ids() == ["3", "4", "5"] and sub.live
        hub.on_entries(ROOM, [(5, body(5)), (6, body(6))])
        assert client.ids() == ["3", "4", "5", "6"]

    run(scenario())


def test_a_message_that_arrives_during_the_replay_comes_once_after_it() -> None:
    async def scenario() -> None:
        db = Database(1, 2, 3, 4, 5)
        hub = Hub(db)
        watcher, _ = await subscribe(hub)  # the room is live here already

        def six_arrives() -> None:
            db.store(6)
            hub.on_entries(ROOM, [(6, body(6))])

        db.during_read = six_arrives
        client, _ = await subscribe(hub, since=0)
        assert client.ids() == ["1", "2", "3", "4", "5", "6"]
        assert watcher.ids() == ["6"]
        hub.on_entries(ROOM, [(7, body(7))])
        assert client.ids()[-2:] == ["6", "7"]

    run(scenario())


def test_since_replays_at_most_max_replay_messages() -> None:
    async def scenario() -> None:
        hub = Hub(Database(*range(1, 11)))
        client, _ = await subscribe(hub, since=0, max_replay=3)
        assert client.ids() == ["8", "9", "10"]

    run(scenario())


def test_signals_go_to_live_subscribers_as_they_come_outside_the_order() -> None:
    async def scenario() -> None:
        changed: list[str] = []
        hub = Hub(Database(), on_presence_change=changed.append)
        client, _ = await subscribe(hub)
        hub.on_entries(ROOM, [(2, body(2))])  # held back until 1 arrives
        typing = transient(type="TYPING", roomId=ROOM, sender="bob")
        read = transient(type="READ", roomId=ROOM, sender="bob", lastReadId=1)
        hub.on_entries(ROOM, [(0, typing), (0, read)])
        assert client.got == [("t1", typing.text), ("t2", read.text)]
        assert changed == [], "typing and read marks do not change who is in the room"
        quit_ = encode_body(
            id=None,
            type=QUIT,
            room_id=ROOM,
            sender="bob",
            message=left_text("bob"),
            created_at=CREATED,
            user_count=1,
        )
        hub.on_entries(ROOM, [(0, quit_), (1, body(1))])
        assert changed == [ROOM]
        assert client.ids() == ["t1", "t2", "t3", "1", "2"]

    run(scenario())


def test_an_unsent_message_is_not_replayed_from_memory() -> None:
    async def scenario() -> None:
        db = Database()
        hub = Hub(db)
        await subscribe(hub)
        db.store(1, 2)
        hub.on_entries(ROOM, [(1, body(1)), (2, body(2))])
        db.rows[1] = encode_body(
            id=1,
            type=TALK,
            room_id=ROOM,
            sender="alice",
            message="m1",
            created_at=CREATED,
            user_count=2,
            deleted=True,
        ).text
        hub.on_entries(ROOM, [(0, transient(type="DELETED", roomId=ROOM, id=1))])
        reads = db.reads
        late = Client()
        await hub.subscribe(late, "sub-1", ROOM, f"/sub/chat/room/{ROOM}", 0)
        assert late.got[0] == ("1", db.rows[1]), "the replay reads the tombstone"
        assert db.reads == reads + 1

    run(scenario())


def test_a_room_with_no_subscriber_left_is_forgotten() -> None:
    async def scenario() -> None:
        hub = Hub(Database())
        client, sub = await subscribe(hub)
        hub.unsubscribe(sub)
        assert ROOM not in hub.rooms and not sub.live
        hub.on_entries(ROOM, [(1, body(1))])
        assert client.got == []

    run(scenario())
