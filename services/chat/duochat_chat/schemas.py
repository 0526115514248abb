"""chat's REST shapes (camelCase on the wire)."""

from __future__ import annotations

from pydantic import Field

from duochat_common.wire import CamelModel


class MessageOut(CamelModel):
    id: int | None
    type: str
    room_id: str
    sender: str
    message: str
    created_at: str
    user_count: int
    client_message_id: str | None = None
    deleted: bool | None = None
    # A SYSTEM line's machine code (matched, rejected, closed, left) and its parameters.
    code: str | None = None
    params: dict[str, str] | None = None


class HistoryPage(CamelModel):
    items: list[MessageOut]
    has_more: bool
    other_last_read_id: int = 0  # how far the other member has read (the "1" goes below it)


class ReadMarkIn(CamelModel):
    last_read_id: int = Field(ge=0, le=2**62)


class PresenceOut(CamelModel):
    room_id: str
    members: list[str]
