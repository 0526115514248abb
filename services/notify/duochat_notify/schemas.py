"""The wire shapes of notify's REST replies and SSE payloads (camelCase JSON)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_serializer, model_validator
from pydantic.alias_generators import to_camel

from duochat_notify.models import Alarm

AlarmKind = Literal["message", "applied", "matched", "rejected", "left"]
# A BIGINT id: anything larger could only fail in the database.
AlarmId = Annotated[int, Field(ge=1, le=2**63 - 1)]


class Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class UserOut(Wire):
    id: int
    username: str


class AlarmOut(Wire):
    id: int
    kind: AlarmKind
    room_id: str | None
    board_id: int | None
    board_title: str | None
    from_: UserOut | None = Field(alias="from")
    preview: str
    created_at: datetime
    read: bool

    @field_serializer("created_at")
    def _utc(self, value: datetime) -> str:
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    @classmethod
    def of(cls, alarm: Alarm, **extra: int) -> Self:
        sender = None
        if alarm.from_user_id is not None:
            sender = UserOut(id=alarm.from_user_id, username=alarm.from_username or "")
        return cls(
            id=alarm.id,
            kind=alarm.kind,
            room_id=alarm.room_id,
            board_id=alarm.board_id,
            board_title=alarm.board_title,
            from_=sender,
            preview=alarm.preview,
            created_at=alarm.created_at,
            read=alarm.read_at is not None,
            **extra,
        )

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True)


class AlarmPage(Wire):
    items: list[AlarmOut]
    unread_count: int
    next_cursor: str | None


class RoomAlarmOut(AlarmOut):
    """An entry of the bell: a room's newest ``message`` alarm stands for all of that room's."""

    count: int  # the unread alarms it stands for (a room's unread messages; 0 once read)


class RoomAlarmPage(Wire):
    items: list[RoomAlarmOut]
    unread_count: int  # unread entries: a room with unread messages counts once
    next_cursor: str | None


class ReadRequest(Wire):
    """Mark read either every alarm of one room or the listed alarms."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    room_id: str | None = Field(default=None, min_length=1, max_length=64)
    ids: list[AlarmId] | None = Field(default=None, min_length=1, max_length=500)

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.room_id is None) == (self.ids is None):
            raise ValueError("send either roomId or ids")
        return self


class ReadResult(Wire):
    updated: int
    unread_count: int


class ReadNotice(Wire):
    """The ``read`` SSE event: the user's other tabs learn the new unread count."""

    room_id: str | None
    ids: list[int] | None
    unread_count: int


class TicketOut(Wire):
    ticket: str
    expires_in: int
