"""boards' request and response bodies (camelCase on the wire)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

from duochat_boards.models import Board, BoardStatus, Room, RoomStatus

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


class Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class UserOut(Wire):
    id: int
    username: str


class BoardCreate(Wire):
    title: Title
    content: Content | None = None


class BoardOut(Wire):
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


class BoardPage(Wire):
    items: list[BoardOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


class MatchRequest(Wire):
    room_id: str = Field(min_length=1, max_length=64)


class RoomOut(Wire):
    room_id: str
    board_id: int
    board_title: str
    writer: UserOut
    applicant: UserOut
    status: RoomStatus
    created_at: datetime

    @classmethod
    def of(cls, room: Room) -> RoomOut:
        board = room.board
        return cls(
            room_id=room.room_id,
            board_id=board.id,
            board_title=board.title,
            writer=UserOut(id=board.writer_id, username=board.writer_username),
            applicant=UserOut(id=room.applicant_id, username=room.applicant_username),
            status=RoomStatus(room.status),
            created_at=_utc(room.created_at),
        )


class RoomList(Wire):
    items: list[RoomOut]


class ErrorOut(BaseModel):
    """Every error: a stable machine-readable code and a human message."""

    model_config = ConfigDict(extra="allow")

    code: str
    message: str
    details: list[dict[str, Any]] | None = None
