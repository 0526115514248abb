"""Room rules, with no I/O: who may write, which statuses are read-only, how status moves, and
what the owner remembers of each room it writes to."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum

from duochat_chat.messages import ENTER, STATUS, SYSTEM
from duochat_common.room_status import WRITABLE, RoomStatus

READ_ONLY = tuple(status for status in RoomStatus if status not in WRITABLE)
# A status only moves up: a board's decision, then its close, then a member leaving or a block
# (the last two end a room for good, whatever came before).
STATUS_RANK: dict[str, int] = {
    RoomStatus.OPEN: 0,
    RoomStatus.MATCHED: 1,
    RoomStatus.REJECTED: 1,
    RoomStatus.CLOSED: 2,
    RoomStatus.LEFT: 3,
    RoomStatus.BLOCKED: 3,
}
ROOM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # boards makes UUIDs
RECENT_KEYS = 128  # idempotency keys an owner remembers per room (the database has them all)


class Rejected(Exception):
    """A message the room refuses; the text is safe to show the sender."""


class Nothing(Enum):
    """What ``refusal`` answers for a draft with nothing to store (a status already reached):
    a value, not an error; the draft settles with no message."""

    TO_STORE = "nothing to store"


NOTHING_TO_STORE = Nothing.TO_STORE


def is_room_id(value: str) -> bool:
    """Whether ``value`` can be a room id (checked wherever one comes in, before any use)."""
    return ROOM_ID.fullmatch(value) is not None


def is_read_only(status: str) -> bool:
    return status in READ_ONLY


def moves_forward(current: str, new: str) -> bool:
    return STATUS_RANK.get(new, 0) > STATUS_RANK.get(current, 0)


def read_only_reason(status: str) -> str:
    """What a refused SEND is told. A block is silent: the blocked member must not learn of it,
    so a blocked room reads as closed, without saying by whom."""
    if status in (RoomStatus.REJECTED, RoomStatus.CLOSED, RoomStatus.MATCHED):
        return f"this room is read-only (the board is {status})"
    if status == RoomStatus.LEFT:
        return "this room is read-only (a member left)"
    return "this room is read-only (it is closed)"


@dataclass(slots=True)
class OwnedRoom:
    """What the owner instance keeps of a room: its members, status and highest id."""

    room_id: str
    writer_id: int
    writer_name: str
    applicant_id: int
    applicant_name: str
    status: str
    head: int
    # (sender id, idempotency key) -> stored id, for the newest messages
    keys: dict[tuple[int | None, str], int] = field(default_factory=dict)

    def remember(self, sender_id: int | None, key: str | None, message_id: int) -> None:
        if key is None:
            return
        keys = self.keys
        keys[(sender_id, key)] = message_id
        if len(keys) > 2 * RECENT_KEYS:
            for old in list(keys)[:RECENT_KEYS]:
                del keys[old]

    def refusal(
        self, kind: str, sender_id: int | None, new_status: str | None, *, status: str
    ) -> Rejected | Nothing | None:
        """Why a message of ``kind`` from ``sender_id`` is not stored when the room is at
        ``status`` (an earlier message of the same batch may have moved it), or None."""
        if kind in (SYSTEM, STATUS):
            if kind == STATUS and new_status is None:
                return NOTHING_TO_STORE
            if new_status is not None and not moves_forward(status, new_status):
                return NOTHING_TO_STORE
            return None
        if sender_id not in (self.writer_id, self.applicant_id):
            return Rejected("you are not a member of this room")
        if kind != ENTER and is_read_only(status):
            return Rejected(read_only_reason(status))
        return None

    def people(self) -> tuple[tuple[int, str], tuple[int, str]]:
        return (self.writer_id, self.writer_name), (self.applicant_id, self.applicant_name)
