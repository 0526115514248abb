"""The owner's writer against MariaDB, in process: two instances that both believe they own a
room are fenced by the database, a resent key is stored once, and a message that cannot be
stored fails alone in its batch."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest
from sqlalchemy import insert, select

from duochat_chat import mysql_batch
from duochat_chat.drafts import Draft, Outcome, Stored
from duochat_chat.messages import TALK, utcnow_ms
from duochat_chat.models import Message, OutboxBatch, Room
from duochat_chat.presence import Here, Presence
from duochat_chat.ring import Ring
from duochat_chat.rooms import Rejected
from duochat_chat.writer import MessageWriter
from duochat_common.db import Database
from duochat_common.redis_store import create_redis


@dataclass
class Owner:
    """One writer that owns every room (its ring knows only itself)."""

    writer: MessageWriter
    outcomes: list[Outcome] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    rerouted: list[Draft] = field(default_factory=list)

    def submit(self, draft: Draft) -> asyncio.Future[Stored | None]:
        return self.writer.submit(draft)


def _deliver(owner_ref: list[Owner]):
    def deliver(
        drafts: Sequence[Draft],
        outcome: Sequence[Outcome],
        present: dict[str, Here],
        events: list[str],
        outbox_id: str,
    ) -> None:
        owner = owner_ref[0]
        owner.outcomes += outcome
        owner.events += events
        for draft, result in zip(drafts, outcome, strict=True):
            fut = draft.future
            if fut is not None and not fut.done():
                if isinstance(result, Exception):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)

    return deliver


@pytest.fixture
async def owners(database_url: str) -> AsyncIterator[list[Owner]]:
    db = Database(database_url)
    redis = create_redis(f"memory://{uuid.uuid4().hex}")
    made: list[Owner] = []
    tasks = []
    for name in ("w1", "w2"):
        ref: list[Owner] = []
        ring = Ring(redis, key=f"ring-{name}", instance=name)
        writer = MessageWriter(
            mysql_batch.writer_database(db),
            reads=db,
            presence=Presence(redis, key=lambda k: k, instance=name),
            ring=ring,
            deliver=_deliver(ref),
            reroute=lambda d: ref[0].rerouted.append(d),
        )
        ref.append(Owner(writer))
        made.append(ref[0])
        tasks.append(asyncio.create_task(writer.run()))
    try:
        yield made
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for owner in made:
            await owner.writer.db.dispose()
        await db.dispose()
        await redis.aclose()


async def new_room(db_url: str) -> str:
    db = Database(db_url)
    room_id = f"w-{uuid.uuid4().hex[:12]}"
    async with db.engine.begin() as conn:
        await conn.execute(
            insert(Room).values(
                room_id=room_id,
                board_id=1,
                writer_id=1,
                writer_name="alice",
                applicant_id=2,
                applicant_name="bob",
                status="open",
                updated_at=utcnow_ms(),
            )
        )
    await db.dispose()
    return room_id


async def stored(db_url: str, room_id: str) -> list[tuple[int, str]]:
    db = Database(db_url)
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            select(Message.id, Message.message)
            .where(Message.room_id == room_id)
            .order_by(Message.id)
        )
        out = [(r.id, r.message) for r in rows]
    await db.dispose()
    return out


def talk(room_id: str, text: str, key: str | None = None, sender: int = 1) -> Draft:
    return Draft(room_id, TALK, sender, "alice" if sender == 1 else "bob", text, key=key)


async def test_two_owners_of_one_room_are_fenced(owners, database_url) -> None:
    room = await new_room(database_url)
    w1, w2 = owners
    futures = []
    for i in range(60):
        futures.append(w1.submit(talk(room, f"one-{i}", key=f"one-{i}")))
        futures.append(w2.submit(talk(room, f"two-{i}", key=f"two-{i}", sender=2)))
        if i % 7 == 0:
            await asyncio.sleep(0.005)  # interleave their batches
    results = await asyncio.gather(*futures)
    assert all(isinstance(r, Stored) for r in results)
    rows = await stored(database_url, room)
    assert [i for i, _ in rows] == list(range(1, 121)), "ids are dense and used once"
    assert sorted(t for _, t in rows) == sorted(
        [f"one-{i}" for i in range(60)] + [f"two-{i}" for i in range(60)]
    )
    assert w1.writer.fenced + w2.writer.fenced > 0, "the two owners did collide"
    # Every message's event was built exactly once, by the owner that stored it.
    assert len(w1.events) + len(w2.events) == 120


async def test_a_key_stored_by_another_owner_settles_with_its_id(owners, database_url) -> None:
    room = await new_room(database_url)
    w1, w2 = owners
    first = await w1.submit(talk(room, "hello", key="same"))
    again = await w2.submit(talk(room, "hello", key="same"))
    assert isinstance(first, Stored) and isinstance(again, Stored)
    assert again.id == first.id and again.body is None  # nothing new to deliver
    assert [t for _, t in await stored(database_url, room)] == ["hello"]


async def test_a_key_twice_in_one_batch_is_stored_once(owners, database_url) -> None:
    room = await new_room(database_url)
    w1 = owners[0]
    first, again = await asyncio.gather(
        w1.submit(talk(room, "twice", key="same-batch")),
        w1.submit(talk(room, "twice", key="same-batch")),
    )
    assert isinstance(first, Stored) and isinstance(again, Stored)
    assert again.id == first.id and again.body is None
    assert [t for _, t in await stored(database_url, room)] == ["twice"]


async def test_a_message_that_cannot_be_stored_fails_alone(owners, database_url) -> None:
    room = await new_room(database_url)
    other = await new_room(database_url)
    w1 = owners[0]
    drafts = [talk(room if i % 2 else other, f"ok-{i}", key=f"ok-{i}") for i in range(30)]
    drafts.insert(7, talk(room, "bad \ud800 surrogate", key="bad-text"))
    # Longer than a TEXT column holds: MariaDB refuses the whole INSERT it is part of.
    drafts.insert(19, talk(other, "x" * 70_000, key="too-long"))
    results = await asyncio.gather(*(w1.submit(d) for d in drafts), return_exceptions=True)
    failed = [d.key for d, r in zip(drafts, results, strict=True) if isinstance(r, Exception)]
    assert failed == ["bad-text", "too-long"]
    assert all(isinstance(r, Rejected) for r in results if isinstance(r, Exception))
    texts = [t for _, t in await stored(database_url, room) + await stored(database_url, other)]
    assert sorted(texts) == sorted(f"ok-{i}" for i in range(30))


async def test_a_batch_and_its_events_commit_together(owners, database_url) -> None:
    room = await new_room(database_url)
    w1 = owners[0]
    await asyncio.gather(*(w1.submit(talk(room, f"m{i}", key=f"m{i}")) for i in range(5)))
    db = Database(database_url)
    async with db.engine.connect() as conn:
        payloads = (await conn.execute(select(OutboxBatch.payload))).scalars().all()
    await db.dispose()
    assert any(room in payload for payload in payloads), "the outbox row is written"
