"""The writer's transaction on MySQL/MariaDB in two round trips: lock, then write and commit.

Both instances' writers take turns on the same rooms' row locks (the two members of a room are
usually on different instances), so the time from taking the locks to the commit is what the
other writer waits for. Through SQLAlchemy that time was three more round trips (write the
rooms back, insert the messages, commit), each also a wake-up of MariaDB and of this process on
a shared machine. Here the three go as one multi-statement query, on the writer's own
connection: ``MULTI_STATEMENTS`` is set on that engine only (see ``writer_database``), and the
statements are built here with values escaped by the driver, the same escaping PyMySQL applies
to every parameterised query. No SQL text comes from a client.

SQLite (embedded mode) keeps the SQLAlchemy path in ``store.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from pymysql.constants import CLIENT
from sqlalchemy.ext.asyncio import AsyncConnection

from duochat_chat.models import Message, Room
from duochat_common.db import Database, is_sqlite

ROOM_COLUMNS = (
    "room_id",
    "board_id",
    "last_id",
    "status",
    "writer_id",
    "writer_name",
    "applicant_id",
    "applicant_name",
    "writer_entered",
    "applicant_entered",
)
# What a batch can change in a room row it holds locked.
ROOM_CHANGES = ("last_id", "status", "writer_entered", "applicant_entered")
MESSAGE_COLUMNS = tuple(c.name for c in Message.__table__.columns)
ROOMS = Room.__tablename__
MESSAGES = Message.__tablename__


def writer_database(db: Database) -> Database:
    """The writer's engine: on MySQL a small one whose connections may send several statements
    in one query; on SQLite the service's own."""
    if is_sqlite(db.url):
        return db
    # SQLAlchemy sets FOUND_ROWS itself, unless connect_args replaces the flags: keep it.
    flags = CLIENT.MULTI_STATEMENTS | CLIENT.FOUND_ROWS
    return Database(db.url, pool_size=1, max_overflow=1, connect_args={"client_flag": flags})


@contextlib.asynccontextmanager
async def cursor(conn: AsyncConnection) -> AsyncIterator[Any]:
    """A driver (aiomysql) cursor on the connection the writer holds from its engine."""
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    async with driver.cursor() as driver_cursor:
        yield driver_cursor


def _marks(n: int) -> str:
    return ", ".join(["%s"] * n)


async def lock_rooms(cursor: Any, room_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Lock the rooms' rows in key order (so two writers never deadlock) and read them."""
    await cursor.execute(
        f"SELECT {', '.join(ROOM_COLUMNS)} FROM {ROOMS} "  # noqa: S608 - names and placeholders
        f"WHERE room_id IN ({_marks(len(room_ids))}) ORDER BY room_id FOR UPDATE",
        list(room_ids),
    )
    return {row[0]: dict(zip(ROOM_COLUMNS, row, strict=True)) for row in await cursor.fetchall()}


def write_and_commit(
    cursor: Any, rooms: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]], now: datetime
) -> str:
    """One query: the changed rooms written back, the messages inserted, COMMIT."""
    parts = []
    if rooms:
        sets, args = [], []
        for column in ROOM_CHANGES:
            sets.append(f"{column} = CASE room_id {' '.join(['WHEN %s THEN %s'] * len(rooms))} END")
            for room in rooms:
                value = room[column]
                args += [room["room_id"], bool(value) if column.endswith("_entered") else value]
        ids = [room["room_id"] for room in rooms]
        parts.append(
            cursor.mogrify(
                f"UPDATE {ROOMS} SET {', '.join(sets)}, updated_at = %s "  # noqa: S608 - as above
                f"WHERE room_id IN ({_marks(len(ids))})",
                [*args, now, *ids],
            )
        )
    if rows:
        values = ", ".join([f"({_marks(len(MESSAGE_COLUMNS))})"] * len(rows))
        parts.append(
            cursor.mogrify(
                f"INSERT INTO {MESSAGES} ({', '.join(MESSAGE_COLUMNS)}) VALUES {values}",  # noqa: S608
                [row[column] for row in rows for column in MESSAGE_COLUMNS],
            )
        )
    parts.append("COMMIT")
    return ";\n".join(parts)


async def run_batch(cursor: Any, query: str) -> None:
    """Send ``write_and_commit``'s query and read every statement's result; on an error the
    statements after the failing one did not run, so the transaction is rolled back."""
    try:
        await cursor.execute(query)
        while await cursor.nextset():
            pass
    except BaseException:
        await rollback_quietly(cursor.connection)
        raise


async def find_message(
    cursor: Any, room_id: str, message_id: int
) -> tuple[str, str, datetime] | None:
    """A stored message's sender, text and time, if it is there."""
    await cursor.execute(
        f"SELECT sender_name, message, created_at FROM {MESSAGES} "  # noqa: S608
        "WHERE room_id = %s AND id = %s",
        [room_id, message_id],
    )
    row = await cursor.fetchone()
    return None if row is None else (row[0], row[1], row[2])


async def rollback_quietly(connection: Any) -> None:
    with contextlib.suppress(Exception):
        await connection.rollback()
