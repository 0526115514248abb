"""What notify does with its table: store alarms once, list them, mark them read, prune them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, distinct, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from duochat_common.db import utcnow
from duochat_common.errors import BadRequest
from duochat_notify.models import Alarm
from duochat_notify.schemas import AlarmOut, AlarmPage, RoomAlarmOut, RoomAlarmPage


@dataclass(frozen=True, slots=True, kw_only=True)
class NewAlarm:
    """An alarm about to be stored; ``source_event_id`` makes storing it idempotent."""

    user_id: int
    kind: str
    source_event_id: str
    preview: str
    created_at: datetime
    room_id: str | None = None
    board_id: int | None = None
    board_title: str | None = None
    from_user_id: int | None = None
    from_username: str | None = None
    message_id: int | None = None
    # Pushed live only after the presence hold, if still unread (``held.py``).
    held: bool = False


async def store_alarms(*, session: AsyncSession, alarms: Sequence[NewAlarm]) -> list[Alarm]:
    """Insert the alarms unless already stored; return them all as stored (old or new), in id
    order, which is the order they were first stored in."""
    if not alarms:
        return []
    # The table, not the mapped class: a plain INSERT, without the ORM's bulk bookkeeping.
    table = cast(Table, Alarm.__table__)
    stmt = (
        insert(table)
        .prefix_with("IGNORE", dialect="mysql")
        .prefix_with("IGNORE", dialect="mariadb")
        .prefix_with("OR IGNORE", dialect="sqlite")
    )
    rows = [
        {
            "user_id": a.user_id,
            "kind": a.kind,
            "source_event_id": a.source_event_id,
            "preview": a.preview,
            "created_at": a.created_at,
            "room_id": a.room_id,
            "board_id": a.board_id,
            "board_title": a.board_title,
            "from_user_id": a.from_user_id,
            "from_username": a.from_username,
            "message_id": a.message_id,
        }
        for a in alarms
    ]
    wanted = {(a.user_id, a.source_event_id) for a in alarms}
    found: dict[int, Any] = {}
    connection = await session.connection()
    if connection.dialect.insert_returning:
        # MariaDB 10.5+ and SQLite 3.35+ name the new rows at once, saving a query on the
        # usual path; rows the IGNORE skipped (a redelivered event) are looked up below.
        inserted = await session.execute(stmt.returning(*table.c), rows)
        found.update((row.id, row) for row in inserted)
    else:
        await session.execute(stmt, rows)
    if len(found) < len(wanted):
        earlier = await session.execute(
            select(table).where(
                table.c.source_event_id.in_({a.source_event_id for a in alarms}),
                table.c.user_id.in_({a.user_id for a in alarms}),
            )
        )
        found.update((row.id, row) for row in earlier)
    await session.commit()
    return [
        Alarm(**row._mapping)
        for _, row in sorted(found.items())
        if (row.user_id, row.source_event_id) in wanted
    ]


async def unread_alarms(*, session: AsyncSession, ids: Sequence[int]) -> list[Alarm]:
    """The alarms with these ids that are still unread, in id order."""
    if not ids:
        return []
    query = select(Alarm).where(Alarm.id.in_(set(ids)), Alarm.read_at.is_(None))
    return list(await session.scalars(query.order_by(Alarm.id)))


async def count_unread(*, session: AsyncSession, user_id: int) -> int:
    """How many of the user's alarms are unread."""
    count = await session.scalar(
        select(func.count()).where(Alarm.user_id == user_id, Alarm.read_at.is_(None))
    )
    return int(count or 0)


MAX_ID = 2**63 - 1  # BIGINT: a larger number would fail in the database, not here


def _parse_cursor(cursor: str | None) -> int | None:
    if cursor is None or cursor == "":
        return None
    # isdigit() alone takes "²" and other digits int() refuses.
    if not (cursor.isascii() and cursor.isdigit()) or int(cursor) > MAX_ID:
        raise BadRequest("cursor is not one this service gave out", code="invalid_cursor")
    return int(cursor)


async def list_alarms(
    *, session: AsyncSession, user_id: int, limit: int, cursor: str | None
) -> AlarmPage:
    """One page of the user's alarms, newest first, with the unread count."""
    before = _parse_cursor(cursor)
    query = select(Alarm).where(Alarm.user_id == user_id)
    if before is not None:
        query = query.where(Alarm.id < before)
    rows = list(await session.scalars(query.order_by(Alarm.id.desc()).limit(limit + 1)))
    page, more = rows[:limit], len(rows) > limit
    return AlarmPage(
        items=[AlarmOut.of(row) for row in page],
        unread_count=await count_unread(session=session, user_id=user_id),
        next_cursor=str(page[-1].id) if more else None,
    )


async def list_alarms_by_room(
    *, session: AsyncSession, user_id: int, limit: int, cursor: str | None
) -> RoomAlarmPage:
    """One page of the user's alarms, newest first, where each room's ``message`` alarms are
    one entry (the newest, with how many of them are unread); the unread count counts
    entries."""
    before = _parse_cursor(cursor)
    mine = Alarm.user_id == user_id
    newest = (
        select(func.max(Alarm.id))
        .where(mine, Alarm.kind == "message")
        .group_by(Alarm.room_id)
        .scalar_subquery()
    )
    query = select(Alarm).where(mine, or_(Alarm.kind != "message", Alarm.id.in_(newest)))
    if before is not None:
        query = query.where(Alarm.id < before)
    rows = list(await session.scalars(query.order_by(Alarm.id.desc()).limit(limit + 1)))
    page, more = rows[:limit], len(rows) > limit
    unread_messages = (mine, Alarm.kind == "message", Alarm.read_at.is_(None))
    rooms = {row.room_id for row in page if row.kind == "message"}
    counts: dict[str | None, int] = {}
    if rooms:
        counts = dict(
            (
                await session.execute(
                    select(Alarm.room_id, func.count())
                    .where(*unread_messages, Alarm.room_id.in_(rooms))
                    .group_by(Alarm.room_id)
                )
            ).all()
        )
    others = await session.scalar(
        select(func.count()).where(mine, Alarm.kind != "message", Alarm.read_at.is_(None))
    )
    unread_rooms = await session.scalar(
        select(func.count(distinct(Alarm.room_id))).where(*unread_messages)
    )

    def entry(row: Alarm) -> RoomAlarmOut:
        unread = counts.get(row.room_id, 0) if row.kind == "message" else int(not row.read_at)
        return RoomAlarmOut.of(row, count=unread)

    return RoomAlarmPage(
        items=[entry(row) for row in page],
        unread_count=int(others or 0) + int(unread_rooms or 0),
        next_cursor=str(page[-1].id) if more else None,
    )


async def mark_read(
    *,
    session: AsyncSession,
    user_id: int,
    room_id: str | None = None,
    ids: Sequence[int] | None = None,
    up_to_message_id: int | None = None,
) -> int:
    """Mark the user's unread alarms of a room, or with the given ids, read; returns how many.

    With ``up_to_message_id`` (chat's read mark) a ``message`` alarm about a later message stays
    unread: the reader has not seen that message yet.
    """
    if (room_id is None) == (ids is None):
        raise ValueError("give room_id or ids")
    query = update(Alarm).where(Alarm.user_id == user_id, Alarm.read_at.is_(None))
    if room_id is not None:
        query = query.where(Alarm.room_id == room_id)
    else:
        query = query.where(Alarm.id.in_(set(ids or ())))
    if up_to_message_id is not None:
        query = query.where(or_(Alarm.message_id.is_(None), Alarm.message_id <= up_to_message_id))
    result = await session.execute(query.values(read_at=utcnow()))
    await session.commit()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def prune_read(*, session: AsyncSession, read_before: datetime, batch: int = 1000) -> int:
    """Delete alarms read before ``read_before``, in batches; returns how many."""
    total = 0
    while True:
        ids = list(
            await session.scalars(
                select(Alarm.id).where(Alarm.read_at < read_before).order_by(Alarm.id).limit(batch)
            )
        )
        if not ids:
            return total
        await session.execute(delete(Alarm).where(Alarm.id.in_(ids)))
        await session.commit()
        total += len(ids)
        if len(ids) < batch:
            return total
