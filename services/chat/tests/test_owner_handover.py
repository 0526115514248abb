"""A room's owner handing over, in process: the ring (which instance owns each room, and how the
owners move when one joins, leaves or dies) on the in-process store, and the writer on SQLite with
a ring and presence it is told about: it gives back what it no longer owns, and forgets a room it
handed over, so that when the room comes back it reads what the other owner wrote. The tests are
sync (each runs its own event loop in a thread)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from duochat_chat.drafts import Draft, Outcome, Stored
from duochat_chat.messages import TALK, utcnow_ms
from duochat_chat.models import ChatBase, Message, Room
from duochat_chat.presence import Here
from duochat_chat.ring import Ring, rendezvous
from duochat_chat.writer import MAX_HOPS, MessageWriter
from duochat_common.db import Database
from duochat_common.redis_store import create_redis

ROOMS = [f"room-{i}" for i in range(300)]


def run(coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` in a fresh event loop of its own thread (whatever loop this one runs)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coro).result(timeout=60)


# -- the ring ----------------------------------------------------------------------------------


def owners(instances: tuple[str, ...]) -> dict[str, str]:
    return {room: rendezvous(instances, room) for room in ROOMS}


def test_a_joining_instance_takes_only_rooms_it_wins_and_a_leaving_one_gives_only_its_own() -> None:
    two, three = owners(("a", "b")), owners(("a", "b", "c"))
    moved = [room for room in ROOMS if two[room] != three[room]]
    assert moved, "the newcomer wins some rooms"
    assert all(three[room] == "c" for room in moved), "no room moves between a and b"
    assert 50 < len(moved) < 150, "about a third of the rooms"
    after = owners(("a", "c"))
    assert all(after[room] == three[room] for room in ROOMS if three[room] != "b")
    assert owners(("b", "a")) == two, "the order instances are listed in does not matter"


def test_instances_that_see_the_same_set_pick_the_same_owner_and_follow_a_leave() -> None:
    async def scenario() -> None:
        redis = create_redis(f"memory://{uuid.uuid4().hex}")
        a = Ring(redis, key="chat:instances", instance="a")
        b = Ring(redis, key="chat:instances", instance="b")
        changes: list[tuple[str, ...]] = []
        a.listeners.append(lambda: changes.append(a.live))
        await a.beat()
        assert all(a.owns(room) for room in ROOMS), "alone, it owns everything"
        await b.beat()
        await a.beat()
        assert a.live == b.live == ("a", "b")
        assert {room: a.owner(room) for room in ROOMS} == {r: b.owner(r) for r in ROOMS}
        mine = {room for room in ROOMS if b.owns(room)}
        assert mine and not any(a.owns(room) for room in mine)

        await b.leave()  # draining: out of the set at once, and no longer counting itself
        assert not any(b.owns(room) for room in ROOMS)
        await b.beat()
        assert b.live == ("a",), "a draining instance does not rejoin on its next beat"
        await a.beat()
        assert a.live == ("a",) and all(a.owns(room) for room in ROOMS)
        assert changes == [("a", "b"), ("a",)], "listeners hear each change once"
        await redis.aclose()

    run(scenario())


def test_an_instance_that_stops_beating_drops_out_after_its_ttl() -> None:
    async def scenario() -> None:
        redis = create_redis(f"memory://{uuid.uuid4().hex}")
        a = Ring(redis, key="chat:instances", instance="a", ttl_s=0.3)
        b = Ring(redis, key="chat:instances", instance="b", ttl_s=0.3)
        await b.beat()
        await a.beat()
        assert a.live == ("a", "b") and a.is_live("b")
        await asyncio.sleep(0.4)  # b died: no beat, no leave
        await a.beat()
        assert a.live == ("a",) and not a.is_live("b")
        assert all(a.owns(room) for room in ROOMS)
        await redis.aclose()

    run(scenario())


def test_a_room_is_owned_by_an_instance_that_holds_its_subscribers() -> None:
    async def scenario() -> None:
        redis = create_redis(f"memory://{uuid.uuid4().hex}")
        seen: dict[str, frozenset[str]] = {}
        rings = {name: Ring(redis, key="chat:instances", instance=name) for name in "abcdefgh"}
        for ring in rings.values():
            ring.nodes_of = seen.get
            await ring.beat()
        for ring in rings.values():
            await ring.beat()
        a = rings["a"]
        assert len(a.live) == 8
        handed: list[str] = []
        a.room_listeners.append(handed.append)
        spread = {a.owner(room) for room in ROOMS}
        assert len(spread) == 8, "a room nobody is in: any live instance"
        for room in ROOMS:
            seen[room] = frozenset({"a", "b"})
        assert {a.owner(room) for room in ROOMS} == {"a", "b"}, "one of its members' instances"
        assert all(r.owner(room) == a.owner(room) for r in rings.values() for room in ROOMS)
        assert 100 < sum(a.owns(room) for room in ROOMS) < 200
        mine = [room for room in ROOMS if a.owns(room)]
        for room in mine:
            seen[room] = frozenset({"b", "z"})  # a's member left; z is not a live instance
        assert not any(a.owns(room) for room in mine) and {a.owner(r) for r in mine} == {"b"}
        assert handed == mine, "the writer is told of each room that left"
        await rings["b"].leave()
        await a.beat()
        after = {a.owner(room) for room in mine}
        assert "b" not in after and len(after) > 1, "b drained: back to every live instance"
        await redis.aclose()

    run(scenario())


# -- the writer --------------------------------------------------------------------------------


class Owners:
    """Who owns each room, as one instance's ring tells its writer (set by the test)."""

    def __init__(self, instance: str, owner: dict[str, str]) -> None:
        self.instance = instance
        self._owner = owner  # shared by every instance's view: they agree
        self.listeners: list[Callable[[], None]] = []
        self.room_listeners: list[Callable[[str], None]] = []

    def owner(self, room_id: str) -> str:
        return self._owner[room_id]

    def owns(self, room_id: str) -> bool:
        return self.owner(room_id) == self.instance

    def moved(self) -> None:
        for listener in self.listeners:
            listener()

    def moved_room(self, room_id: str) -> None:
        """The room's subscribers moved: it left this instance (as ``Ring.owner`` tells)."""
        for listener in self.room_listeners:
            listener(room_id)


class Nobody:
    """Presence: nobody is in any room."""

    async def snapshot(self, room_ids: Sequence[str]) -> dict[str, Here]:
        return {room_id: Here.empty() for room_id in room_ids}

    def local_here(self, room_id: str) -> Here:
        return Here.empty(known=False)


class Instance:
    """One chat instance's writer, with what it delivered and what it gave back."""

    def __init__(self, name: str, db: Database, owner: dict[str, str]) -> None:
        self.ring = Owners(name, owner)
        self.rerouted: list[Draft] = []
        self.writer = MessageWriter(
            db,
            reads=db,
            presence=Nobody(),
            ring=self.ring,
            deliver=self._deliver,
            reroute=self.rerouted.append,
        )

    def _deliver(
        self,
        drafts: Sequence[Draft],
        outcome: Sequence[Outcome],
        present: dict[str, Here],
        events: list[str],
        outbox_id: str,
    ) -> None:
        for draft, result in zip(drafts, outcome, strict=True):
            if draft.future is not None and not draft.future.done():
                if isinstance(result, Exception):
                    draft.future.set_exception(result)
                else:
                    draft.future.set_result(result)

    async def send(self, room_id: str, text: str, *, hops: int = 0) -> int:
        draft = Draft(room_id, TALK, 1, "alice", text, key=uuid.uuid4().hex, hops=hops)
        stored = await asyncio.wait_for(self.writer.submit(draft), 10)
        assert isinstance(stored, Stored)
        return stored.id


async def database(tmp_path: Path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'chat.db'}")
    async with db.engine.begin() as conn:
        await conn.run_sync(ChatBase.metadata.create_all)
        await conn.execute(
            insert(Room).values(
                room_id="r1",
                board_id=1,
                writer_id=1,
                writer_name="alice",
                applicant_id=2,
                applicant_name="bob",
                status="open",
                updated_at=utcnow_ms(),
            )
        )
    return db


async def stored(db: Database) -> list[tuple[int, str]]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(select(Message.id, Message.message).order_by(Message.id))
        return [(row.id, row.message) for row in rows]


def test_a_room_handed_over_and_back_continues_where_the_other_owner_left_it(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        db = await database(tmp_path)
        owner = {"r1": "a"}
        a, b = Instance("a", db, owner), Instance("b", db, owner)
        tasks = [asyncio.create_task(i.writer.run()) for i in (a, b)]
        try:
            assert [await a.send("r1", "one"), await a.send("r1", "two")] == [1, 2]
            assert "r1" in a.writer.rooms

            owner["r1"] = "b"  # b joined and wins the room
            a.ring.moved()
            b.ring.moved()
            assert await b.send("r1", "three") == 3, "the new owner reads the room's head"

            owner["r1"] = "a"  # b drained: the room comes back
            a.ring.moved()
            b.ring.moved()
            assert await a.send("r1", "four") == 4, "a forgot the room it handed over"
            assert "r1" not in b.writer.rooms or b.writer._moved == {"r1"}

            owner["r1"] = "b"  # a member's instance changed: the room alone moves, and back
            a.ring.moved_room("r1")
            assert await b.send("r1", "five") == 5
            owner["r1"] = "a"
            b.ring.moved_room("r1")
            assert await a.send("r1", "six") == 6
            assert a.writer.fenced == b.writer.fenced == 0, "read again, never fenced"
            assert await stored(db) == [
                (1, "one"),
                (2, "two"),
                (3, "three"),
                (4, "four"),
                (5, "five"),
                (6, "six"),
            ]
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await db.dispose()

    run(scenario())


def test_a_draft_for_a_room_the_writer_no_longer_owns_is_given_back(tmp_path: Path) -> None:
    async def scenario() -> None:
        db = await database(tmp_path)
        owner = {"r1": "b"}
        a = Instance("a", db, owner)
        task = asyncio.create_task(a.writer.run())
        try:
            late = Draft("r1", TALK, 1, "alice", "sent to the old owner", key="k1", hops=1)
            a.writer.enqueue(late)
            assert a.writer.holds("r1"), "the router queues the room's next drafts behind it"
            for _ in range(100):
                if a.rerouted:
                    break
                await asyncio.sleep(0.01)
            assert a.rerouted == [late], "handed back, for the new owner"
            assert not a.writer.holds("r1"), "and the room's later drafts go straight there"
            assert await stored(db) == [], "and not written here"
            # After MAX_HOPS forwards between instances that disagree, it is written where it
            # is (the database fences a stale owner).
            assert await a.send("r1", "written anyway", hops=MAX_HOPS) == 1
            assert len(a.rerouted) == 1
            assert not a.writer.holds("r1")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await db.dispose()

    run(scenario())
