"""What the owner's writer takes and gives back: drafts, their outcomes, and the event each
stored message makes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import orjson

from duochat_chat.messages import Body
from duochat_chat.presence import Here
from duochat_chat.rooms import OwnedRoom
from duochat_common.events.schemas import ChatMessageSent


@dataclass(slots=True)
class Draft:
    room_id: str
    type: str
    sender_id: int | None
    sender_name: str
    text: str
    # The idempotency key: the client's clientMessageId, or one the server made (``~...``).
    key: str | None = None
    # SYSTEM only: move the room to this status, and post the message only if that is a change.
    new_status: str | None = None
    # SYSTEM only: the one member the line is meant for (None: both).
    audience: int | None = None
    # SYSTEM only: the line's code and parameters (``messages.Notice``), stored with the text.
    code: str | None = None
    params: dict[str, str] | None = None
    # Where the outcome goes: a future on this instance, or (origin, request) elsewhere.
    future: asyncio.Future[Stored | None] | None = field(default=None, repr=False)
    origin: str | None = None
    request: int = 0
    hops: int = 0
    # When the SEND reached chat (wall clock, in milliseconds: an int costs a fraction of a
    # float to encode; 0: not a client's frame), and its span's traceparent when tracing is on.
    sent_ms: int = 0
    trace: str | None = None
    # Counted in its room's lane on the instance that sent it, until it settles (``forwarding``).
    in_lane: bool = field(default=False, repr=False)


@dataclass(slots=True)
class Stored:
    room_id: str
    id: int
    body: Body | None  # None: stored before (a resend); nothing new to deliver


Outcome = Stored | Exception | None


def message_sent_event(
    d: Draft, room: OwnedRoom, message_id: int, sender: str, here: Here, created: str
) -> str:
    """The ``chat.message.sent`` envelope as JSON, built directly: this runs once per message,
    and is the same document ``ChatMessageSent(...).envelope().to_json()`` makes (a test checks
    that the schema reads it back). Its id is the message's own, so an event relayed twice (by
    the writer, and by a sweep of the outbox) is handled once by its consumers."""
    data = {
        "messageId": message_id,
        "roomId": d.room_id,
        "type": d.type,
        "sender": {"id": d.sender_id or 0, "username": sender},
        "preview": d.text[:120],
        "createdAt": created,
        "recipients": [
            {
                "id": uid,
                "username": name,
                "inRoom": uid in here.members,
                "presenceKnown": here.known or uid in here.members,
            }
            for uid, name in room.people()
            if uid != d.sender_id
        ],
    }
    envelope = {
        "id": message_event_id(d.room_id, message_id),
        "type": ChatMessageSent.TYPE,
        "version": ChatMessageSent.VERSION,
        "occurredAt": created,
        "data": data,
    }
    if d.trace is not None:
        envelope["traceparent"] = d.trace
    return orjson.dumps(envelope).decode()


def message_event_id(room_id: str, message_id: int) -> str:
    return f"msg.{room_id}.{message_id}"
