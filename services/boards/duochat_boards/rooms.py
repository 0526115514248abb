"""Rooms seen from one member: listing them, leaving one, muting one.

Leaving is for either member, while the room still takes messages (open or matched): it
becomes ``left``, read-only for both, and no longer counts as an application on its board.
``room.left`` tells chat (a SYSTEM line) and notify (a ``left`` alarm to the other member).
A mute is one member's: notify rings no bell for the room, and the flag is listed with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from functools import partial
from typing import Literal

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import contains_eager

from duochat_boards.blocks import room_detail
from duochat_boards.models import Board, Room, RoomMute
from duochat_boards.outbox import Outbox
from duochat_boards.retry import again_on_race
from duochat_common.db import utcnow
from duochat_common.errors import Conflict, Forbidden, NotFound
from duochat_common.events.schemas import BOARDS_STREAM, RoomLeft, RoomMuted, UserRef
from duochat_common.room_status import WRITABLE, RoomStatus
from duochat_common.tokens import AuthUser

Ended = Literal["recent", "exclude", "include"]


async def list_rooms(
    *,
    session: AsyncSession,
    user: AuthUser,
    role: str | None,
    ended: Ended = "recent",
    recent_days: int = 30,
) -> Sequence[tuple[Room, bool]]:
    """The caller's rooms, newest first, each with whether the caller muted it: of boards they
    wrote, they applied from, or both. ``ended``: ``recent`` lists read-only rooms for
    ``recent_days`` after they ended, ``exclude`` lists only rooms that take messages,
    ``include`` lists every room."""
    muted = and_(
        RoomMute.room_id == Room.room_id, RoomMute.user_id == user.id, RoomMute.muted.is_(True)
    )
    stmt = (
        select(Room, RoomMute.muted)
        .join(Room.board)
        .outerjoin(RoomMute, muted)
        .options(contains_eager(Room.board))
        .order_by(Room.id.desc())
    )
    if role == "writer":
        stmt = stmt.where(Board.writer_id == user.id)
    elif role == "applicant":
        stmt = stmt.where(Room.applicant_id == user.id)
    else:
        stmt = stmt.where(or_(Board.writer_id == user.id, Room.applicant_id == user.id))
    if ended == "exclude":
        stmt = stmt.where(Room.status.in_(WRITABLE))
    elif ended == "recent":
        since = utcnow() - timedelta(days=recent_days)
        stmt = stmt.where(or_(Room.ended_at.is_(None), Room.ended_at >= since))
    return [(room, bool(flag)) for room, flag in (await session.execute(stmt)).all()]


def _require_member(room: Room, user: AuthUser) -> None:
    if user.id not in (room.applicant_id, room.board.writer_id):
        raise Forbidden("you are not a member of this room", code="not_member")


async def _room(session: AsyncSession, room_id: str, *, lock: bool = False) -> Room:
    stmt = select(Room).where(Room.room_id == room_id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    room = await session.scalar(stmt)
    if room is None:
        raise NotFound("no such room", code="room_not_found")
    return room


async def is_muted(session: AsyncSession, room_id: str, user_id: int) -> bool:
    flag = await session.scalar(
        select(RoomMute.muted).where(RoomMute.room_id == room_id, RoomMute.user_id == user_id)
    )
    return bool(flag)


async def get_room(*, session: AsyncSession, room_id: str, user: AuthUser) -> tuple[Room, bool]:
    """A room the caller is a member of (its board's writer or its applicant), and whether the
    caller muted it."""
    room = await _room(session, room_id)
    _require_member(room, user)
    return room, await is_muted(session, room_id, user.id)


async def leave(
    *, session: AsyncSession, outbox: Outbox, room_id: str, user: AuthUser
) -> tuple[Room, bool]:
    """Leave a room (withdraw an application, or end a conversation as the writer): it becomes
    read-only for both members. Leaving again is answered the same; leaving a room that is
    read-only for another reason is 409 ``room_read_only``."""
    room = await _room(session, room_id)
    _require_member(room, user)
    # The board first: the order in which apply, match and close lock.
    await session.execute(select(Board.id).where(Board.id == room.board_id).with_for_update())
    room = await _room(session, room_id, lock=True)
    if room.status == RoomStatus.LEFT and room.ended_by == user.id:
        await session.commit()
        return room, await is_muted(session, room_id, user.id)
    if room.status not in WRITABLE:
        raise Conflict("this room is already read-only", code="room_read_only")
    now = utcnow()
    await session.execute(
        update(Room)
        .where(Room.id == room.id, Room.status.in_(WRITABLE))
        .values(status=RoomStatus.LEFT, ended_at=now, ended_by=user.id)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(Board)
        .where(Board.id == room.board_id, Board.applicant_count > 0)
        .values(applicant_count=Board.applicant_count - 1)
    )
    room.status, room.ended_at, room.ended_by = RoomStatus.LEFT, now, user.id
    event = RoomLeft(room=room_detail(room), by=UserRef(id=user.id, username=user.username))
    muted = await is_muted(session, room_id, user.id)
    await outbox.commit(session, BOARDS_STREAM, event)
    return room, muted


async def _mute_row(session: AsyncSession, room_id: str, user_id: int) -> RoomMute | None:
    return await session.scalar(
        select(RoomMute)
        .where(RoomMute.room_id == room_id, RoomMute.user_id == user_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def set_muted(
    *, session: AsyncSession, outbox: Outbox, room_id: str, user: AuthUser, muted: bool
) -> Room:
    """Mute or unmute a room for the caller (a member); setting what is set changes nothing."""
    room = await _room(session, room_id)
    _require_member(room, user)
    event = await again_on_race(
        session, partial(_stage_mute, session, room_id=room_id, user=user, muted=muted)
    )
    if event is None:
        await session.commit()
    else:
        await outbox.commit(session, BOARDS_STREAM, event)
    return await _room(session, room_id)  # read again: a rollback above expired it


async def _stage_mute(
    session: AsyncSession, *, room_id: str, user: AuthUser, muted: bool
) -> RoomMuted | None:
    row = await _mute_row(session, room_id, user.id)
    if row is None:
        if not muted:
            return None
        row = RoomMute(room_id=room_id, user_id=user.id, muted=True, version=1, changed_at=utcnow())
        session.add(row)
        await session.flush()  # a concurrent mute may win the key: staged again
    elif row.muted == muted:
        return None
    else:
        row.muted = muted
        row.version += 1
        row.changed_at = utcnow()
    return RoomMuted(
        room_id=room_id,
        user=UserRef(id=user.id, username=user.username),
        muted=muted,
        version=row.version,
    )
