"""chat's tables: the room projection, messages, read marks, and the outbox of chat's events.

A message's ``id`` counts up from 1 within its room. Only the room's owner instance assigns ids
(in memory, from the room's highest stored id), so ids are dense and every member sees them in
one order. The ``(room_id, id)`` primary key fences a stale owner: its insert of an id that is
taken fails, and it reloads the room. ``(room_id, client_message_id, sender_id)`` is unique, so a
resent SEND is stored once whichever instance owns the room.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from duochat_common.db import BigId, Timestamp
from duochat_common.room_status import RoomStatus

ROOM_ID_LEN = 64


class ChatBase(DeclarativeBase):
    """chat's own metadata."""


class Room(ChatBase):
    """What boards said about a room: its two members and whether it is still writable."""

    __tablename__ = "chat_rooms"

    room_id: Mapped[str] = mapped_column(String(ROOM_ID_LEN), primary_key=True)
    board_id: Mapped[int] = mapped_column(BigId)
    board_title: Mapped[str] = mapped_column(String(200), default="")
    writer_id: Mapped[int] = mapped_column(BigId, index=True)
    writer_name: Mapped[str] = mapped_column(String(64))
    applicant_id: Mapped[int] = mapped_column(BigId, index=True)
    applicant_name: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=RoomStatus.OPEN)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class Message(ChatBase):
    __tablename__ = "chat_messages"
    __table_args__ = (
        Index("uq_chat_messages_client", "room_id", "client_message_id", "sender_id", unique=True),
    )

    room_id: Mapped[str] = mapped_column(String(ROOM_ID_LEN), primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    type: Mapped[str] = mapped_column(String(8))
    sender_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    sender_name: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    user_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    # The sender's idempotency key: the client's ``clientMessageId``, or one the server made
    # (starting with ``~``, never shown to clients; ``~enter`` marks a first visit).
    client_message_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Unsent by its sender: the text is gone, the line (id, time) stays as a tombstone.
    deleted_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    # A SYSTEM line meant for one member (the rejected applicant): it is not the other's unread.
    audience_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    # A SYSTEM line's machine code and its parameters (JSON), which clients word in their own
    # language; ``message`` keeps the English text for clients that predate them.
    code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    params: Mapped[str | None] = mapped_column(Text, nullable=True)


class ReadMark(ChatBase):
    __tablename__ = "chat_reads"

    room_id: Mapped[str] = mapped_column(String(ROOM_ID_LEN), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    last_read_id: Mapped[int] = mapped_column(BigInteger, default=0)


OutboxPayload = Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


class OutboxBatch(ChatBase):
    """The events of one committed write (a JSON list of envelopes), written in the same
    transaction as its messages and deleted once they are on the events stream."""

    __tablename__ = "chat_outbox"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    payload: Mapped[str] = mapped_column(OutboxPayload)
    created_at: Mapped[datetime] = mapped_column(Timestamp, index=True)
