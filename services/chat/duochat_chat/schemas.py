"""The REST shapes (camelCase on the wire)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class MessageOut(Camel):
    id: int | None
    type: str
    room_id: str
    sender: str
    message: str
    created_at: str
    user_count: int
    client_message_id: str | None = None
    deleted: bool | None = None


class HistoryPage(Camel):
    items: list[MessageOut]
    has_more: bool
    other_last_read_id: int = 0  # how far the other member has read (the "1" goes below it)


class ReadMarkIn(Camel):
    last_read_id: int = Field(ge=0, le=2**62)


class PresenceOut(Camel):
    room_id: str
    members: list[str]
