"""Blocks: one user keeps another away.

A block is silent: the blocked user is not told. Their shared rooms that still took messages
become read-only (``blocked``; the blocked member sees ``closed``), the blocked user no longer
sees the blocker's boards (404, as if gone) and cannot apply to them, and notify rings no bell
for anything from them. Lifting a block lets them see and apply again; rooms it made read-only
stay read-only. Every change bumps the pair's ``version``, so consumers that see a block and
an unblock out of order keep the later one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from functools import partial

from sqlalchemy import ColumnElement, and_, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from duochat_boards.models import Block, Board, Room, utcnow
from duochat_boards.outbox import Outbox
from duochat_boards.retry import again_on_race
from duochat_common.errors import NotFound, Unprocessable
from duochat_common.events.schemas import (
    BOARDS_STREAM,
    RoomDetail,
    UserBlocked,
    UserRef,
    UserUnblocked,
)
from duochat_common.room_status import WRITABLE, RoomStatus
from duochat_common.tokens import AuthUser


def room_detail(room: Room) -> RoomDetail:
    board = room.board
    return RoomDetail(
        room_id=room.room_id,
        board_id=board.id,
        board_title=board.title,
        writer=UserRef(id=board.writer_id, username=board.writer_username),
        applicant=UserRef(id=room.applicant_id, username=room.applicant_username),
    )


async def known_username(session: AsyncSession, user_id: int) -> str | None:
    """The name boards has seen ``user_id`` under (as a writer or an applicant), if any."""
    name = await session.scalar(
        select(Board.writer_username).where(Board.writer_id == user_id).limit(1)
    )
    if name is None:
        name = await session.scalar(
            select(Room.applicant_username).where(Room.applicant_id == user_id).limit(1)
        )
    return name


def hides_writer(viewer_id: int) -> ColumnElement[bool]:
    """True for a board whose writer blocked ``viewer_id``, or whom ``viewer_id`` blocked."""
    return exists().where(
        Block.active.is_(True),
        or_(
            and_(Block.blocker_id == Board.writer_id, Block.blocked_id == viewer_id),
            and_(Block.blocker_id == viewer_id, Block.blocked_id == Board.writer_id),
        ),
    )


async def is_blocked(session: AsyncSession, *, blocker_id: int, blocked_id: int) -> bool:
    """Whether the block is on, read with a lock so that an apply and a block of the same pair
    run one after the other (the block then sees the new room)."""
    row = await session.scalar(
        select(Block.active)
        .where(Block.blocker_id == blocker_id, Block.blocked_id == blocked_id)
        .with_for_update()
    )
    return bool(row)


async def _block_row(session: AsyncSession, blocker: AuthUser, blocked_id: int) -> Block | None:
    return await session.scalar(
        select(Block)
        .where(Block.blocker_id == blocker.id, Block.blocked_id == blocked_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def _shared_rooms(session: AsyncSession, a: int, b: int) -> Sequence[Room]:
    """The writable rooms between ``a`` and ``b``, locked with their boards. A locking read
    sees the latest rows, whatever this transaction read before: an apply that committed while
    this block waited for the pair's row is seen here."""
    pair = or_(
        and_(Board.writer_id == a, Room.applicant_id == b),
        and_(Board.writer_id == b, Room.applicant_id == a),
    )
    return (
        await session.scalars(
            select(Room)
            .join(Room.board)
            .where(pair, Room.status.in_(WRITABLE))
            .order_by(Room.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).all()


async def stage_block(
    *, session: AsyncSession, blocker: AuthUser, blocked_id: int
) -> tuple[Block, UserBlocked | None]:
    """Block in the session's transaction (no commit): the row and the event to publish, or
    None when the block was already on."""
    if blocked_id == blocker.id:
        raise Unprocessable("you cannot block yourself", code="cannot_block_self")
    username = await known_username(session, blocked_id)
    if username is None:
        raise NotFound("no such user", code="user_not_found")
    row = await _block_row(session, blocker, blocked_id)
    if row is None:
        now = utcnow()
        row = Block(
            blocker_id=blocker.id,
            blocked_id=blocked_id,
            blocked_username=username,
            active=True,
            version=1,
            created_at=now,
            changed_at=now,
        )
        session.add(row)
        # A concurrent block of the same pair may insert first: the caller stages again
        # (``again_on_race``; no savepoint: SQLite's would commit).
        await session.flush()
    elif not _reactivate(row, username):
        return row, None
    rooms = await _shared_rooms(session, blocker.id, blocked_id)
    await _end_rooms(session, rooms, by=blocker.id)
    await session.flush()
    event = UserBlocked(
        blocker=UserRef(id=blocker.id, username=blocker.username),
        blocked=UserRef(id=blocked_id, username=username),
        version=row.version,
        rooms=[room_detail(room) for room in rooms],
    )
    return row, event


def _reactivate(row: Block, username: str) -> bool:
    """Turn a lifted block back on; False if it is on already."""
    if row.active:
        return False
    now = utcnow()
    row.active = True
    row.version += 1
    row.created_at = now
    row.changed_at = now
    row.blocked_username = username
    return True


async def _end_rooms(session: AsyncSession, rooms: Sequence[Room], *, by: int) -> None:
    if not rooms:
        return
    now = utcnow()
    await session.execute(
        update(Room)
        .where(Room.id.in_([room.id for room in rooms]))
        .values(status=RoomStatus.BLOCKED, ended_at=now, ended_by=by)
        .execution_options(synchronize_session=False)
    )
    for board_id, count in Counter(room.board_id for room in rooms).items():
        await session.execute(
            update(Board)
            .where(Board.id == board_id, Board.applicant_count >= count)
            .values(applicant_count=Board.applicant_count - count)
        )
    for room in rooms:
        room.status = RoomStatus.BLOCKED
        room.ended_at = now
        room.ended_by = by


async def block(
    *, session: AsyncSession, outbox: Outbox, blocker: AuthUser, blocked_id: int
) -> tuple[Block, bool]:
    """Block a user; returns the block and whether it is new (blocking twice changes nothing)."""
    row, event = await again_on_race(
        session, partial(stage_block, session=session, blocker=blocker, blocked_id=blocked_id)
    )
    if event is None:
        await session.commit()
        return row, False
    await outbox.commit(session, BOARDS_STREAM, event)
    return row, True


async def unblock(
    *, session: AsyncSession, outbox: Outbox, blocker: AuthUser, blocked_id: int
) -> None:
    """Lift a block (nothing happens if there is none)."""
    row = await _block_row(session, blocker, blocked_id)
    if row is None or not row.active:
        await session.commit()
        return
    row.active = False
    row.version += 1
    row.changed_at = utcnow()
    event = UserUnblocked(
        blocker=UserRef(id=blocker.id, username=blocker.username),
        blocked=UserRef(id=blocked_id, username=row.blocked_username),
        version=row.version,
    )
    await outbox.commit(session, BOARDS_STREAM, event)


async def list_blocks(*, session: AsyncSession, user: AuthUser) -> Sequence[Block]:
    """The users the caller blocks, newest block first."""
    return (
        await session.scalars(
            select(Block)
            .where(Block.blocker_id == user.id, Block.active.is_(True))
            .order_by(Block.created_at.desc(), Block.blocked_id.desc())
        )
    ).all()
