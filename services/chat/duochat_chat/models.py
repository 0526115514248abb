"""chat's tables: the room projection (with each room's message counter), messages, read marks.

A message's ``id`` counts up from 1 within its room. The writer takes it from ``chat_rooms.last_id``
while holding that row's lock, so ids are dense, and every member sees them in one order.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, Integer, String, Text
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from duochat_common.db import BigId

Timestamp = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
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
    status: Mapped[str] = mapped_column(String(16), default="open")
    last_id: Mapped[int] = mapped_column(BigInteger, default=0)
    writer_entered: Mapped[bool] = mapped_column(Boolean, default=False)
    applicant_entered: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class Message(ChatBase):
    __tablename__ = "chat_messages"

    room_id: Mapped[str] = mapped_column(String(ROOM_ID_LEN), primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    type: Mapped[str] = mapped_column(String(8))
    sender_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    sender_name: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    user_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class ReadMark(ChatBase):
    __tablename__ = "chat_reads"

    room_id: Mapped[str] = mapped_column(String(ROOM_ID_LEN), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    last_read_id: Mapped[int] = mapped_column(BigInteger, default=0)
