"""Reports: a user reports another from a room they share (optionally naming messages) or from
a board the other wrote. The report is stored for the operators, with a copy of the named
messages as chat stored them (``evidence``), and the reporter's block of the reported user
follows in the same transaction. Each user may file ``limit`` reports per window (429
``too_many_reports`` beyond)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from duochat_boards.blocks import stage_block
from duochat_boards.evidence import MessageSource
from duochat_boards.models import Board, Report, ReportReason, Room
from duochat_boards.outbox import Outbox
from duochat_boards.retry import again_on_race
from duochat_boards.service import decode_cursor, encode_cursor
from duochat_common.db import utcnow
from duochat_common.errors import Forbidden, NotFound, Unprocessable
from duochat_common.events.schemas import BOARDS_STREAM, EventData
from duochat_common.ratelimit import WindowLimiter
from duochat_common.tokens import AuthUser


async def _reported(
    session: AsyncSession, user: AuthUser, *, room_id: str | None, board_id: int | None
) -> tuple[int, str]:
    """Who the report is about: the caller's counterpart in ``room_id``, or the writer of
    ``board_id``."""
    if room_id is not None:
        room = await session.scalar(select(Room).where(Room.room_id == room_id))
        if room is None:
            raise NotFound("no such room", code="room_not_found")
        writer = room.board
        if user.id == writer.writer_id:
            return room.applicant_id, room.applicant_username
        if user.id == room.applicant_id:
            return writer.writer_id, writer.writer_username
        raise Forbidden("you are not a member of this room", code="not_member")
    board = await session.get(Board, board_id)
    if board is None:
        raise NotFound("no such board", code="board_not_found")
    if board.writer_id == user.id:
        raise Unprocessable("you cannot report yourself", code="cannot_report_self")
    return board.writer_id, board.writer_username


async def report(
    *,
    session: AsyncSession,
    outbox: Outbox,
    limiter: WindowLimiter,
    source: MessageSource,
    user: AuthUser,
    token: str,
    reason: ReportReason,
    note: str,
    room_id: str | None,
    board_id: int | None,
    message_ids: Sequence[int],
) -> Report:
    """File a report, with chat's copy of the named messages (asked with the reporter's
    ``token``), and block the reported user (rate-limited per reporter)."""
    reported_id, reported_name = await _reported(session, user, room_id=room_id, board_id=board_id)
    messages = []
    if room_id is not None and message_ids:
        messages = await source.messages(room_id=room_id, ids=message_ids, token=token)
    stage = partial(
        _stage,
        session,
        user,
        reported_id,
        reported_name,
        reason=reason,
        note=note,
        room_id=room_id,
        board_id=board_id,
        message_ids=message_ids,
        messages=messages,
    )
    # Counted once the report is known to be valid: a mistyped one costs nothing.
    await limiter.hit(
        str(user.id),
        message="too many reports in a short time; try again later",
        code="too_many_reports",
    )
    row, events = await again_on_race(session, stage)  # a concurrent block of the same pair
    await outbox.commit(session, BOARDS_STREAM, *events)
    return row


async def _stage(
    session: AsyncSession,
    user: AuthUser,
    reported_id: int,
    reported_name: str,
    *,
    reason: ReportReason,
    note: str,
    room_id: str | None,
    board_id: int | None,
    message_ids: Sequence[int],
    messages: list[dict[str, Any]],
) -> tuple[Report, list[EventData]]:
    row = Report(
        reporter_id=user.id,
        reporter_username=user.username,
        reported_id=reported_id,
        reported_username=reported_name,
        reason=reason,
        note=note,
        room_id=room_id,
        board_id=board_id,
        message_ids=json.dumps(list(message_ids)),
        messages=json.dumps(messages, ensure_ascii=False),
        created_at=utcnow(),
    )
    session.add(row)
    _, blocked = await stage_block(session=session, blocker=user, blocked_id=reported_id)
    return row, [blocked] if blocked is not None else []


async def list_reports(
    *, session: AsyncSession, limit: int, cursor: str | None, reported_id: int | None
) -> tuple[Sequence[Report], str | None]:
    """A page of reports, newest first (operators only: the route checks the role)."""
    stmt = select(Report).order_by(Report.id.desc()).limit(limit + 1)
    if cursor:
        stmt = stmt.where(Report.id < decode_cursor(cursor))
    if reported_id is not None:
        stmt = stmt.where(Report.reported_id == reported_id)
    rows = (await session.scalars(stmt)).all()
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, encode_cursor(rows[-1].id)
    return rows, None
