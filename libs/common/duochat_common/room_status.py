"""A room's status: boards decides it, chat enforces it, and both store these values."""

from __future__ import annotations

from enum import StrEnum


class RoomStatus(StrEnum):
    OPEN = "open"
    MATCHED = "matched"
    REJECTED = "rejected"
    CLOSED = "closed"
    LEFT = "left"  # a member left (an applicant withdrew, or the writer ended it)
    BLOCKED = "blocked"  # one member blocked the other (shown to the blocked one as closed)


# A room in one of these takes messages; every other status is read-only for both members.
WRITABLE = (RoomStatus.OPEN, RoomStatus.MATCHED)
