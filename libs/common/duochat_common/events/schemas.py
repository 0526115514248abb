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


class RoomDetail(BaseModel):
    """A room with everything a consumer needs to know it, even one it has not seen before."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    room_id: str
    board_id: int
    board_title: str
    writer: UserRef
    applicant: UserRef


class RoomLeft(EventData):
    """A member left the room (an applicant withdrew, or the writer ended it): it is read-only
    for both, and the other member is told."""

    TYPE = "room.left"
    room: RoomDetail
    by: UserRef


class UserBlocked(EventData):
    """``blocker`` blocked ``blocked``. ``rooms`` are their shared rooms that became read-only
    (silently: no line is posted, and the blocked user is not told). ``version`` counts the
    pair's block and unblock changes; a consumer keeps the highest it has seen."""

    TYPE = "user.blocked"
    blocker: UserRef
    blocked: UserRef
    version: int
    rooms: list[RoomDetail]


class UserUnblocked(EventData):
    """``blocker`` lifted the block (rooms made read-only by it stay read-only)."""

    TYPE = "user.unblocked"
    blocker: UserRef
    blocked: UserRef
    version: int


class RoomMuted(EventData):
    """``user`` muted (or unmuted) a room: no bell for it; ``version`` orders the changes."""

    TYPE = "room.muted"
    room_id: str
    user: UserRef
    muted: bool
    version: int


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
