"""The writer's transaction on MySQL/MariaDB in one round trip.

The owner holds no row lock: it assigns ids itself, so a batch is its inserts (the messages,
one outbox row with their events), any status changes, and the COMMIT, sent as one
multi-statement query on the writer's own connection. ``MULTI_STATEMENTS`` is set on that engine
only (see ``writer_database``), and the statements are built here with values escaped by the
driver, the same escaping PyMySQL applies to every parameterised query. No SQL text comes from
a client.

SQLite (embedded mode) takes the SQLAlchemy path in ``writer.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from pymysql.constants import CLIENT
from sqlalchemy.ext.asyncio import AsyncConnection

from duochat_chat.models import Message, OutboxBatch, Room
from duochat_common.db import Database, is_sqlite

MESSAGE_COLUMNS = tuple(c.name for c in Message.__table__.columns)
ROOMS = Room.__tablename__
MESSAGES = Message.__tablename__
OUTBOX = OutboxBatch.__tablename__


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


class _Literals:
    """SQL literals for one batch, escaped by the driver connection (as ``mogrify`` does, so
    the session's NO_BACKSLASH_ESCAPES is honoured) and remembered: a batch repeats its room
    ids, names and time in every row."""

    __slots__ = ("escape", "seen")

    def __init__(self, connection: Any) -> None:
        self.escape = connection.escape
        self.seen: dict[tuple[type, object], str] = {}

    def __call__(self, value: object) -> str:
        if value is None:
            return "NULL"
        kind = type(value)
        if kind is int:
            return str(value)
        key = (kind, value)
        found = self.seen.get(key)
        if found is None:
            found = self.seen[key] = self.escape(value)
        return found


def write_and_commit(
    cursor: Any,
    rows: Sequence[dict[str, Any]],
    outbox: dict[str, Any] | None,
    statuses: dict[str, str],
    now: datetime,
    relayed: Sequence[str] = (),
) -> str:
    """One query: the messages, the outbox row, the rooms' new statuses, the deletion of
    outbox rows already relayed (``relayed``), COMMIT."""
    parts = []
    if rows:
        literal = _Literals(cursor.connection)
        values = ", ".join(
            "(" + ", ".join([literal(row[column]) for column in MESSAGE_COLUMNS]) + ")"
            for row in rows
        )
        parts.append(f"INSERT INTO {MESSAGES} ({', '.join(MESSAGE_COLUMNS)}) VALUES {values}")  # noqa: S608
    if outbox is not None:
        parts.append(
            cursor.mogrify(
                f"INSERT INTO {OUTBOX} (id, payload, created_at) VALUES (%s, %s, %s)",  # noqa: S608
                [outbox["id"], outbox["payload"], outbox["created_at"]],
            )
        )
    for room_id, status in statuses.items():
        parts.append(
            cursor.mogrify(
                f"UPDATE {ROOMS} SET status = %s, updated_at = %s WHERE room_id = %s",  # noqa: S608
                [status, now, room_id],
            )
        )
    if relayed:
        parts.append(
            cursor.mogrify(
                f"DELETE FROM {OUTBOX} WHERE id IN ({', '.join(['%s'] * len(relayed))})",  # noqa: S608
                list(relayed),
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


async def rollback_quietly(connection: Any) -> None:
    with contextlib.suppress(Exception):
        await connection.rollback()
