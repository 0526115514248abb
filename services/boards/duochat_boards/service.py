"""boards' use cases. Each is a verb, keyword-only, and raises typed domain errors.

Every state change locks its board row first (``SELECT ... FOR UPDATE``), so applies, matches
and closes of one board run one after another on MySQL. Each also leaves ``open`` through a
conditional UPDATE (``WHERE status = 'open'``), which keeps them race-safe on SQLite too, where
FOR UPDATE is ignored but writers are serialized by the database lock.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, case, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from duochat_boards.blocks import hides_writer, is_blocked
from duochat_boards.models import Board, BoardStatus, Room
from duochat_boards.outbox import Outbox
from duochat_common.db import utcnow
from duochat_common.errors import Conflict, Forbidden, NotFound, Unprocessable
from duochat_common.events.schemas import (
    BOARDS_STREAM,
    BoardApplied,
    BoardClosed,
    BoardCreated,
    BoardMatched,
    EventData,
    RoomRef,
    UserRef,
)
from duochat_common.room_status import RoomStatus
from duochat_common.tokens import AuthUser

_CURSOR = re.compile(r"b([1-9][0-9]{0,18})")


def encode_cursor(board_id: int) -> str:
    """An opaque cursor that resumes a listing after ``board_id``."""
    return base64.urlsafe_b64encode(f"b{board_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The board id a cursor resumes after, or ``Unprocessable``."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError):
        raw = ""
    found = _CURSOR.fullmatch(raw)
    if found is None:
        raise Unprocessable("cursor is not valid: pass nextCursor as given", code="invalid_cursor")
    return int(found.group(1))


def _writer(board: Board) -> UserRef:
    return UserRef(id=board.writer_id, username=board.writer_username)


def _room_ref(room: Room) -> RoomRef:
    return RoomRef(
        room_id=room.room_id,
        applicant=UserRef(id=room.applicant_id, username=room.applicant_username),
    )


def _closed() -> Conflict:
    return Conflict("this board is no longer open", code="board_closed")


def _rowcount(result: Any) -> int:
    return int(result.rowcount)


async def _commit(session: AsyncSession, outbox: Outbox, *events: EventData) -> None:
    await outbox.commit(session, BOARDS_STREAM, *events)


async def _locked_board(session: AsyncSession, board_id: int) -> Board:
    board = await session.scalar(select(Board).where(Board.id == board_id).with_for_update())
    if board is None:
        raise _no_board()
    return board


def _require_writer(board: Board, user: AuthUser) -> None:
    if board.writer_id != user.id:
        raise Forbidden("only the board's writer can do this", code="not_writer")


async def _leave_open(session: AsyncSession, board: Board, status: BoardStatus) -> None:
    result = await session.execute(
        update(Board)
        .where(Board.id == board.id, Board.status == BoardStatus.OPEN)
        .values(status=status, updated_at=utcnow())
    )
    if _rowcount(result) != 1:
        raise _closed()


def _is_open(room: Room) -> bool:
    return room.status == RoomStatus.OPEN


async def _rooms_of(session: AsyncSession, board_id: int) -> Sequence[Room]:
    return (
        await session.scalars(
            select(Room)
            .where(Room.board_id == board_id)
            .order_by(Room.id)
            .execution_options(populate_existing=True)
        )
    ).all()


async def create_board(
    *, session: AsyncSession, outbox: Outbox, user: AuthUser, title: str, content: str | None
) -> Board:
    """Post a board; it starts open, with no applicants."""
    now = utcnow()
    board = Board(
        title=title,
        content=content or "",
        writer_id=user.id,
        writer_username=user.username,
        status=BoardStatus.OPEN,
        applicant_count=0,
        created_at=now,
        updated_at=now,
    )
    session.add(board)
    await session.flush()
    await _commit(
        session,
        outbox,
        BoardCreated(board_id=board.id, title=board.title, writer=_writer(board)),
    )
    return board


def _no_board() -> NotFound:
    return NotFound("no such board", code="board_not_found")


async def get_board(*, session: AsyncSession, board_id: int, user: AuthUser) -> Board:
    """One board, or ``NotFound`` (also when its writer blocked the caller: blocks are silent)."""
    board = await session.get(Board, board_id)
    if board is None:
        raise _no_board()
    if board.writer_id != user.id and await is_blocked(
        session, blocker_id=board.writer_id, blocked_id=user.id
    ):
        raise _no_board()
    return board


async def list_boards(
    *,
    session: AsyncSession,
    user: AuthUser,
    status: BoardStatus | None,
    q: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[Sequence[Board], str | None]:
    """A page of boards, newest first, and the cursor of the next page (None on the last).
    Boards of a writer who blocked the caller, or whom the caller blocked, are left out."""
    stmt: Select[Board] = (
        select(Board).where(~hides_writer(user.id)).order_by(Board.id.desc()).limit(limit + 1)
    )
    if cursor:
        stmt = stmt.where(Board.id < decode_cursor(cursor))
    if status is not None:
        stmt = stmt.where(Board.status == status)
    if q:
        # autoescape: a "%" or "_" in the query matches itself, not any text.
        stmt = stmt.where(
            or_(
                Board.title.contains(q, autoescape=True), Board.content.contains(q, autoescape=True)
            )
        )
    boards = (await session.scalars(stmt)).all()
    if len(boards) > limit:
        boards = boards[:limit]
        return boards, encode_cursor(boards[-1].id)
    return boards, None


async def apply(*, session: AsyncSession, outbox: Outbox, board_id: int, user: AuthUser) -> Room:
    """Apply to a board: opens the private room between its writer and the caller."""
    board = await _locked_board(session, board_id)
    if board.writer_id == user.id:
        raise Conflict("you cannot apply to your own board", code="own_board")
    if await is_blocked(session, blocker_id=board.writer_id, blocked_id=user.id):
        raise _no_board()  # silent: to the blocked user the board is gone
    if await is_blocked(session, blocker_id=user.id, blocked_id=board.writer_id):
        raise Conflict("you blocked this board's writer; unblock them first", code="user_blocked")
    mine = select(Room.id).where(Room.board_id == board_id, Room.applicant_id == user.id)
    if await session.scalar(mine) is not None:
        raise Conflict("you already applied to this board", code="already_applied")
    if board.status != BoardStatus.OPEN:
        raise _closed()
    counted = await session.execute(
        update(Board)
        .where(Board.id == board_id, Board.status == BoardStatus.OPEN)
        .values(applicant_count=Board.applicant_count + 1, updated_at=utcnow())
    )
    if _rowcount(counted) != 1:
        raise _closed()
    room = Room(
        room_id=str(uuid.uuid4()),
        board=board,
        applicant_id=user.id,
        applicant_username=user.username,
        status=RoomStatus.OPEN,
        created_at=utcnow(),
    )
    session.add(room)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent apply by the same user won the unique key
        await session.rollback()
        raise Conflict("you already applied to this board", code="already_applied") from exc
    await _commit(
        session,
        outbox,
        BoardApplied(
            board_id=board.id,
            board_title=board.title,
            room_id=room.room_id,
            writer=_writer(board),
            applicant=UserRef(id=user.id, username=user.username),
        ),
    )
    return room


async def match(
    *, session: AsyncSession, outbox: Outbox, board_id: int, room_id: str, user: AuthUser
) -> Board:
    """Pick one applicant: the board and that room become matched, every other room rejected."""
    board = await _locked_board(session, board_id)
    _require_writer(board, user)
    if board.status != BoardStatus.OPEN:
        raise _closed()
    found = (
        await session.execute(
            select(Room.id, Room.status).where(Room.room_id == room_id, Room.board_id == board_id)
        )
    ).first()
    if found is None:
        raise NotFound("no such room on this board", code="room_not_found")
    chosen, status = found
    if status != RoomStatus.OPEN:
        raise Conflict("that applicant has left this room", code="room_read_only")
    open_before = {room.id for room in await _rooms_of(session, board_id) if _is_open(room)}
    await _leave_open(session, board, BoardStatus.MATCHED)
    # Rooms already left or blocked keep their status: they are not decided again.
    await session.execute(
        update(Room)
        .where(Room.board_id == board_id, Room.status == RoomStatus.OPEN)
        .values(
            status=case((Room.id == chosen, RoomStatus.MATCHED), else_=RoomStatus.REJECTED),
            ended_at=case((Room.id == chosen, None), else_=utcnow()),
        )
        .execution_options(synchronize_session=False)
    )
    rooms = [room for room in await _rooms_of(session, board_id) if room.id in open_before]
    matched = next(room for room in rooms if room.id == chosen)
    await _commit(
        session,
        outbox,
        BoardMatched(
            board_id=board.id,
            board_title=board.title,
            writer=_writer(board),
            matched=_room_ref(matched),
            rejected=[_room_ref(room) for room in rooms if room.id != chosen],
        ),
    )
    return board


async def close(*, session: AsyncSession, outbox: Outbox, board_id: int, user: AuthUser) -> None:
    """Close an open board and every room on it."""
    board = await _locked_board(session, board_id)
    _require_writer(board, user)
    if board.status != BoardStatus.OPEN:
        raise _closed()
    open_before = {room.id for room in await _rooms_of(session, board_id) if _is_open(room)}
    await _leave_open(session, board, BoardStatus.CLOSED)
    await session.execute(
        update(Room)
        .where(Room.board_id == board_id, Room.status == RoomStatus.OPEN)
        .values(status=RoomStatus.CLOSED, ended_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    rooms = [room for room in await _rooms_of(session, board_id) if room.id in open_before]
    await _commit(
        session,
        outbox,
        BoardClosed(
            board_id=board.id,
            board_title=board.title,
            writer=_writer(board),
            rooms=[_room_ref(room) for room in rooms],
        ),
    )
