"""The writer on MariaDB when the connection drops around the COMMIT: a batch whose COMMIT ran
but went unanswered is not stored twice, and one whose COMMIT never ran is stored once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pymysql
import pytest
from sqlalchemy import insert, select

from duochat_chat import mysql_batch
from duochat_chat.fanout import Publisher
from duochat_chat.hub import Hub
from duochat_chat.messages import TALK, utcnow_ms
from duochat_chat.models import Message, Room
from duochat_chat.presence import Presence
from duochat_chat.store import Draft, History, MessageWriter, Stored
from duochat_common.db import Database
from duochat_common.redis_store import create_redis


@pytest.fixture
async def writer(database_url: str) -> AsyncIterator[MessageWriter]:
    db = Database(database_url)
    redis = create_redis(f"memory://{uuid.uuid4().hex}")
    presence = Presence(redis, key=lambda k: k, instance="t")
    writer = MessageWriter(
        mysql_batch.writer_database(db),
        presence=presence,
        hub=Hub(History(db)),
        publisher=Publisher(redis, fanout_stream="f", events_stream="e"),
    )
    task = asyncio.create_task(writer.run())
    try:
        yield writer
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await writer.db.dispose()
        await db.dispose()
        await redis.aclose()


async def new_room(db: Database) -> str:
    room_id = f"doubt-{uuid.uuid4().hex[:12]}"
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
                last_id=0,
                updated_at=utcnow_ms(),
            )
        )
    return room_id


async def stored_texts(db: Database, room_id: str) -> list[tuple[int, str]]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            select(Message.id, Message.message)
            .where(Message.room_id == room_id)
            .order_by(Message.id)
        )
        return [(r.id, r.message) for r in rows]


def lose_the_reply(*, after_commit: bool) -> Callable[[Any, str], Awaitable[None]]:
    """run_batch, but the first call's connection drops: after the server ran it (the COMMIT's
    reply is what is lost), or before it got there."""
    real = mysql_batch.run_batch
    calls = 0

    async def run_batch(cursor: Any, query: str) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            if after_commit:
                await real(cursor, query)
            cursor.connection.close()  # the socket goes away
            raise pymysql.err.OperationalError(2013, "Lost connection to server during query")
        await real(cursor, query)

    return run_batch


@pytest.mark.parametrize("after_commit", [True, False], ids=["commit-ran", "commit-lost"])
async def test_a_batch_is_stored_once_when_the_commit_goes_unanswered(
    writer: MessageWriter, monkeypatch: pytest.MonkeyPatch, after_commit: bool
) -> None:
    room_id = await new_room(writer.db)
    await writer.submit(Draft(room_id, TALK, 1, "alice", "before"))
    monkeypatch.setattr(mysql_batch, "run_batch", lose_the_reply(after_commit=after_commit))

    futures = [writer.submit(Draft(room_id, TALK, 2, "bob", f"m{i}")) for i in range(3)]
    results = await asyncio.gather(*futures)

    assert all(isinstance(r, Stored) for r in results), "every message gets its receipt"
    assert [r.id for r in results if isinstance(r, Stored)] == [2, 3, 4]
    assert await stored_texts(writer.db, room_id) == [
        (1, "before"),
        (2, "m0"),
        (3, "m1"),
        (4, "m2"),
    ]
    after = await writer.submit(Draft(room_id, TALK, 1, "alice", "after"))
    assert isinstance(after, Stored) and after.id == 5
