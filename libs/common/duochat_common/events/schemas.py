"""Event payload schemas: the only coupling between services.

A producer builds ``SomeEvent(...).envelope()``; a consumer reads ``SomeEvent.parse(envelope)``.
A change that breaks readers bumps ``VERSION``; readers accept the versions they know.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Self

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from duochat_common.events.envelope import Envelope
from duochat_common.tracing import current_traceparent

BOARDS_STREAM = "events.boards"
CHAT_STREAM = "events.chat"
NOTIFY_STREAM = "events.notify"


class EventData(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1

    def envelope(self) -> Envelope:
        """The event in its envelope, in the trace of the current span (if any)."""
        return Envelope(
            type=self.TYPE,
            version=self.VERSION,
            data=self.model_dump(mode="json", by_alias=True),
            traceparent=current_traceparent(),
        )

    @classmethod
    def parse(cls, envelope: Envelope) -> Self:
        return cls.model_validate(envelope.data)


class UserRef(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    id: int
    username: str


class RoomRef(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    room_id: str
    applicant: UserRef


class BoardCreated(EventData):
    TYPE = "board.created"
    board_id: int
    title: str
    writer: UserRef


class BoardApplied(EventData):
    TYPE = "board.applied"
    board_id: int
    board_title: str
    room_id: str
    writer: UserRef
    applicant: UserRef


class BoardMatched(EventData):
    TYPE = "board.matched"
    board_id: int
    board_title: str
    writer: UserRef
    matched: RoomRef
    rejected: list[RoomRef]


class BoardClosed(EventData):
    TYPE = "board.closed"
    board_id: int
    board_title: str
    writer: UserRef
    rooms: list[RoomRef]


class Recipient(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    id: int
    username: str
    in_room: bool
    # False when chat could not read presence (Redis unreachable): ``in_room`` then only tells
    # what the sending instance saw, and the recipient may be in the room on another instance.
    # Optional on the wire, so producers that predate it still validate.
    presence_known: bool = True


class ChatMessageSent(EventData):
    TYPE = "chat.message.sent"
    message_id: int
    room_id: str
    type: str
    sender: UserRef
    preview: str
    created_at: datetime
    recipients: list[Recipient]


class ChatRoomRead(EventData):
    TYPE = "chat.room.read"
    room_id: str
    user: UserRef
    last_read_id: int
