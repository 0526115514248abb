"""boards' request and response bodies (camelCase on the wire)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from duochat_boards.models import (
    Block,
    Board,
    BoardStatus,
    Report,
    ReportReason,
    Room,
)
from duochat_common.room_status import RoomStatus
from duochat_common.wire import CamelModel, UserOut

Role = Literal["writer", "applicant"]


def _encodable(value: str) -> str:
    # JSON allows lone surrogates ("\ud800"); they cannot be stored as UTF-8.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("text must be valid Unicode") from exc
    return value


Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(_encodable),
]
Content = Annotated[str, StringConstraints(max_length=5000), AfterValidator(_encodable)]


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class BoardCreate(CamelModel):
    title: Title
    content: Content | None = None


class BoardOut(CamelModel):
    id: int
    title: str
    content: str
    writer: UserOut
    status: BoardStatus
    applicant_count: int
    created_at: datetime

    @classmethod
    def of(cls, board: Board) -> BoardOut:
        return cls(
            id=board.id,
            title=board.title,
            content=board.content,
            writer=UserOut(id=board.writer_id, username=board.writer_username),
            status=BoardStatus(board.status),
            applicant_count=board.applicant_count,
            created_at=_utc(board.created_at),
        )


class BoardPage(CamelModel):
    items: list[BoardOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


class MatchRequest(CamelModel):
    room_id: str = Field(min_length=1, max_length=64)


class RoomOut(CamelModel):
    room_id: str
    board_id: int
    board_title: str
    writer: UserOut
    applicant: UserOut
    status: RoomStatus = Field(
        description="open and matched take messages; rejected, closed, left and blocked are "
        "read-only (blocked only to the blocker: the blocked member sees closed)"
    )
    created_at: datetime
    ended_at: datetime | None = Field(description="when the room became read-only")
    left_by: UserOut | None = Field(description="who left, when status is left")
    muted: bool = Field(description="whether the caller muted this room (no bell)")

    @classmethod
    def of(cls, room: Room, *, viewer: int, muted: bool = False) -> RoomOut:
        board = room.board
        writer = UserOut(id=board.writer_id, username=board.writer_username)
        applicant = UserOut(id=room.applicant_id, username=room.applicant_username)
        status = RoomStatus(room.status)
        if status == RoomStatus.BLOCKED and room.ended_by != viewer:
            status = RoomStatus.CLOSED  # a block is silent
        left_by = None
        if status == RoomStatus.LEFT:
            left_by = writer if room.ended_by == board.writer_id else applicant
        return cls(
            room_id=room.room_id,
            board_id=board.id,
            board_title=board.title,
            writer=writer,
            applicant=applicant,
            status=status,
            created_at=_utc(room.created_at),
            ended_at=_utc(room.ended_at) if room.ended_at else None,
            left_by=left_by,
            muted=muted,
        )


class RoomList(CamelModel):
    items: list[RoomOut]


class BlockIn(CamelModel):
    user_id: int = Field(ge=1, le=2**63 - 1)


class BlockOut(CamelModel):
    user: UserOut
    created_at: datetime

    @classmethod
    def of(cls, block: Block) -> BlockOut:
        return cls(
            user=UserOut(id=block.blocked_id, username=block.blocked_username),
            created_at=_utc(block.created_at),
        )


class BlockList(CamelModel):
    items: list[BlockOut]


MAX_REPORTED_MESSAGES = 50
Note = Annotated[str, StringConstraints(max_length=1000), AfterValidator(_encodable)]


class ReportIn(CamelModel):
    """A report from a room (``roomId``: about the other member, optionally naming messages)
    or from a board (``boardId``: about its writer); exactly one of the two."""

    model_config = ConfigDict(extra="forbid")

    reason: ReportReason
    note: Note = ""
    room_id: str | None = Field(default=None, min_length=1, max_length=64)
    board_id: int | None = Field(default=None, ge=1, le=2**63 - 1)
    message_ids: list[Annotated[int, Field(ge=1, le=2**62)]] = Field(
        default_factory=list, max_length=MAX_REPORTED_MESSAGES
    )

    @model_validator(mode="after")
    def _one_place(self) -> ReportIn:
        if (self.room_id is None) == (self.board_id is None):
            raise ValueError("give exactly one of roomId and boardId")
        if self.message_ids and self.room_id is None:
            raise ValueError("messageIds need the roomId they are in")
        self.message_ids = sorted(set(self.message_ids))
        return self


class ReportedMessage(CamelModel):
    """A reported message as chat had it when the report was filed."""

    id: int
    type: str
    sender: str
    message: str  # empty when it had been unsent already
    created_at: str
    deleted: bool = False


class ReportOut(CamelModel):
    id: int
    reporter: UserOut
    reported: UserOut
    reason: ReportReason
    note: str
    room_id: str | None
    board_id: int | None
    message_ids: list[int]
    # The named messages that chat has, copied at report time (ids chat does not know have none).
    messages: list[ReportedMessage]
    created_at: datetime

    @classmethod
    def of(cls, report: Report) -> ReportOut:
        return cls(
            id=report.id,
            reporter=UserOut(id=report.reporter_id, username=report.reporter_username),
            reported=UserOut(id=report.reported_id, username=report.reported_username),
            reason=ReportReason(report.reason),
            note=report.note,
            room_id=report.room_id,
            board_id=report.board_id,
            message_ids=json.loads(report.message_ids),
            messages=json.loads(report.messages or "[]"),
            created_at=_utc(report.created_at),
        )


class ReportPage(CamelModel):
    items: list[ReportOut]
    next_cursor: str | None
