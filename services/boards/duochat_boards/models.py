"""boards' tables: boards, rooms (one per application), blocks, room mutes, reports, and the
event outbox.

Usernames are copied from the access token onto the rows: boards never reads auth's tables.
Times are naive UTC.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from duochat_common.db import BigId, Timestamp, utcnow
from duochat_common.room_status import RoomStatus

USERNAME_MAX = 64


class BoardStatus(StrEnum):
    OPEN = "open"
    MATCHED = "matched"
    CLOSED = "closed"


# A room in one of these no longer counts as an application on its board.
WITHDRAWN = (RoomStatus.LEFT, RoomStatus.BLOCKED)


class BoardsBase(DeclarativeBase):
    """boards' own metadata: no other service's tables."""


class Board(BoardsBase):
    __tablename__ = "boards"
    __table_args__ = (
        # The list filters by status and walks ids downwards; "my boards" walks by writer.
        Index("ix_boards_status_id", "status", "id"),
        Index("ix_boards_writer_id_id", "writer_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    title: Mapped[str] = mapped_column(String(100))
    content: Mapped[str] = mapped_column(Text)
    writer_id: Mapped[int] = mapped_column(BigId)
    writer_username: Mapped[str] = mapped_column(String(USERNAME_MAX))
    status: Mapped[str] = mapped_column(String(16), default=BoardStatus.OPEN)
    applicant_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class Room(BoardsBase):
    """One application: the private room between a board's writer and one applicant."""

    __tablename__ = "rooms"
    __table_args__ = (
        # One room per applicant and board; a concurrent double apply loses here, not in Python.
        UniqueConstraint("board_id", "applicant_id", name="uq_rooms_board_applicant"),
        Index("ix_rooms_applicant_id_id", "applicant_id", "id"),
    )

    # The surrogate key orders rooms (newest first); room_id is the public UUID.
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    room_id: Mapped[str] = mapped_column(String(36), unique=True)
    board_id: Mapped[int] = mapped_column(BigId, ForeignKey("boards.id", ondelete="CASCADE"))
    applicant_id: Mapped[int] = mapped_column(BigId)
    applicant_username: Mapped[str] = mapped_column(String(USERNAME_MAX))
    status: Mapped[str] = mapped_column(String(16), default=RoomStatus.OPEN)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    # When the room became read-only (rejected, closed, left or blocked); None while writable.
    ended_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    # Who ended it: the member who left, or the blocker; None for a board's decision.
    ended_by: Mapped[int | None] = mapped_column(BigId, nullable=True)

    board: Mapped[Board] = relationship(lazy="joined", innerjoin=True)


class Block(BoardsBase):
    """``blocker`` blocked ``blocked``. The row stays when the block is lifted (``active``
    false), so that ``version`` keeps counting the pair's changes, which orders their events."""

    __tablename__ = "blocks"
    __table_args__ = (Index("ix_blocks_blocked_blocker", "blocked_id", "blocker_id"),)

    blocker_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    blocked_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    blocked_username: Mapped[str] = mapped_column(String(USERNAME_MAX))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)  # this block's start
    changed_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class RoomMute(BoardsBase):
    """One member's mute of one room (the row stays when unmuted, as with blocks)."""

    __tablename__ = "room_mutes"

    room_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    muted: Mapped[bool] = mapped_column(Boolean, default=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    changed_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class ReportReason(StrEnum):
    SPAM = "spam"
    ABUSE = "abuse"
    SCAM = "scam"
    OTHER = "other"


class Report(BoardsBase):
    """A user's report of another user (from a room or a board), with the room's message ids
    they pointed at (chat's ids, stored as given: chat owns the messages)."""

    __tablename__ = "reports"
    __table_args__ = (
        Index("ix_reports_reported_id_id", "reported_id", "id"),
        Index("ix_reports_reporter_id_id", "reporter_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    reporter_id: Mapped[int] = mapped_column(BigId)
    reporter_username: Mapped[str] = mapped_column(String(USERNAME_MAX))
    reported_id: Mapped[int] = mapped_column(BigId)
    reported_username: Mapped[str] = mapped_column(String(USERNAME_MAX))
    reason: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text)
    room_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    board_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    # A JSON list of chat message ids in ``room_id``; "[]" when none were named.
    message_ids: Mapped[str] = mapped_column(Text)
    # A JSON list of those messages as chat had them when the report was filed (its id, type,
    # sender, text, time, and whether it was unsent already): the operators' evidence. NULL
    # for reports filed before it was kept.
    messages: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class OutboxEvent(BoardsBase):
    """An event written in the same transaction as the change it describes."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_published_at_id", "published_at", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # The stream's logical name; the publisher adds the deployment's Redis prefix.
    stream: Mapped[str] = mapped_column(String(100))
    # The envelope as JSON: its id is fixed here, so a re-publish is a duplicate consumers skip.
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
