"""Notify's tables: the notifications ("alarms") each user sees in their list, and its
projections of boards' blocks and room mutes (which alarms are not raised)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, Boolean, DateTime, Index, Integer, String, UniqueConstraint
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Mapped, mapped_column

from duochat_common.db import Base

# SQLite only autoincrements an INTEGER PRIMARY KEY; MySQL DATETIME drops microseconds unless
# asked to keep them.
BigId = BigInteger().with_variant(Integer(), "sqlite")
Timestamp = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

KINDS = ("message", "applied", "matched", "rejected", "left")


def utcnow() -> datetime:
    """Naive UTC, as stored (neither MySQL DATETIME nor SQLite keeps a zone)."""
    return datetime.now(UTC).replace(tzinfo=None)


class NotifyBase(Base):
    __abstract__ = True


class Alarm(NotifyBase):
    __tablename__ = "notify_alarms"
    __table_args__ = (
        # One alarm per user per source event: redelivered events change nothing.
        UniqueConstraint("user_id", "source_event_id", name="uq_notify_alarms_source"),
        Index("ix_notify_alarms_user_id", "user_id", "id"),
        Index("ix_notify_alarms_user_room", "user_id", "room_id"),
        Index("ix_notify_alarms_user_unread", "user_id", "read_at"),
        Index("ix_notify_alarms_read_at", "read_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    room_id: Mapped[str | None] = mapped_column(String(64))
    board_id: Mapped[int | None] = mapped_column(BigInteger)
    board_title: Mapped[str | None] = mapped_column(String(200))
    from_user_id: Mapped[int | None] = mapped_column(BigInteger)
    from_username: Mapped[str | None] = mapped_column(String(64))
    preview: Mapped[str] = mapped_column(String(400))
    # The chat message behind a ``message`` alarm, so that a read mark up to message N leaves
    # a later message's alarm unread.
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    source_event_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(Timestamp)


class BlockView(NotifyBase):
    """boards' block of ``blocked_id`` by ``blocker_id`` as last announced (``version`` keeps
    a late older event from undoing a newer one)."""

    __tablename__ = "notify_blocks"

    blocker_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    blocked_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    active: Mapped[bool] = mapped_column(Boolean)
    version: Mapped[int] = mapped_column(Integer)


class MuteView(NotifyBase):
    """One member's mute of one room, as boards last announced it."""

    __tablename__ = "notify_mutes"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    room_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    muted: Mapped[bool] = mapped_column(Boolean)
    version: Mapped[int] = mapped_column(Integer)
