"""The room rules the owner applies before it stores anything (``rooms.py``), in process: who may
write, which statuses are read-only, how a status moves, and which keys the owner remembers."""

from __future__ import annotations

import pytest

from duochat_chat.messages import ENTER, QUIT, SYSTEM, TALK
from duochat_chat.rooms import (
    NOTHING_TO_STORE,
    READ_ONLY,
    RECENT_KEYS,
    STATUS_RANK,
    OwnedRoom,
    Rejected,
    is_read_only,
    is_room_id,
    moves_forward,
)
from duochat_common.room_status import RoomStatus

WRITER, APPLICANT, STRANGER = 1, 2, 3


def room(status: str = "open") -> OwnedRoom:
    return OwnedRoom("r1", WRITER, "alice", APPLICANT, "bob", status, head=0)


@pytest.mark.parametrize("value", ["0b7c6f0e-3a52-4c1e-9d7e-2f1f0f6a9c11", "r1", "A_b-9", "x" * 64])
def test_room_ids_that_boards_makes_or_tests_use_are_accepted(value: str) -> None:
    assert is_room_id(value)


@pytest.mark.parametrize(
    "value", ["", "x" * 65, "a/b", "a b", "a\x00", "%00", "ä", "r1\n", "../r1", "r.1"]
)
def test_anything_else_is_not_a_room_id(value: str) -> None:
    assert not is_room_id(value)


def test_a_status_only_moves_forward() -> None:
    assert moves_forward("open", "matched") and moves_forward("open", "rejected")
    assert moves_forward("matched", "closed") and moves_forward("rejected", "closed")
    assert not moves_forward("matched", "open")
    assert not moves_forward("closed", "matched")
    assert not moves_forward("matched", "rejected"), "a decision does not replace another"
    assert not moves_forward("open", "open")
    assert not moves_forward("open", "no-such-status"), "an unknown status ranks as open"


def test_the_rules_know_every_status_boards_can_give_a_room() -> None:
    # boards and chat share one RoomStatus; a status added there needs its rank here, or it
    # would rank as open and a room could move back to writable.
    assert set(STATUS_RANK) == set(RoomStatus)
    assert set(READ_ONLY) == set(RoomStatus) - {RoomStatus.OPEN, RoomStatus.MATCHED}
    # the values both services' databases store
    assert [s.value for s in RoomStatus] == [
        "open",
        "matched",
        "rejected",
        "closed",
        "left",
        "blocked",
    ]


def test_every_read_only_status_is_past_open_and_open_is_writable() -> None:
    assert READ_ONLY and not is_read_only("open") and not is_read_only("matched")
    for status in READ_ONLY:
        assert is_read_only(status)
        assert STATUS_RANK[status] > STATUS_RANK["open"]


def test_members_may_talk_in_an_open_or_matched_room() -> None:
    for status in ("open", "matched"):
        for member in (WRITER, APPLICANT):
            assert room(status).refusal(TALK, member, None, status=status) is None


def test_a_stranger_is_refused_whatever_the_status() -> None:
    for status in STATUS_RANK:
        refusal = room(status).refusal(TALK, STRANGER, None, status=status)
        assert isinstance(refusal, Rejected)
        assert "not a member" in str(refusal)


def test_a_read_only_room_refuses_talk_but_takes_a_first_visit() -> None:
    for status in READ_ONLY:
        refusal = room(status).refusal(TALK, APPLICANT, None, status=status)
        assert isinstance(refusal, Rejected) and "read-only" in str(refusal), status
        assert room(status).refusal(ENTER, APPLICANT, None, status=status) is None
    assert isinstance(room("closed").refusal(QUIT, WRITER, None, status="closed"), Rejected)


def test_the_status_an_earlier_message_of_the_batch_set_is_the_one_that_counts() -> None:
    # The room is still open in memory, but a SYSTEM line earlier in the batch closed it.
    refusal = room("open").refusal(TALK, WRITER, None, status="closed")
    assert isinstance(refusal, Rejected)
    assert room("closed").refusal(TALK, WRITER, None, status="open") is None


def test_a_system_line_is_posted_only_when_it_moves_the_status() -> None:
    assert room().refusal(SYSTEM, None, "matched", status="open") is None
    assert room().refusal(SYSTEM, None, "closed", status="matched") is None
    # The same event delivered twice, or a decision after a later one: nothing to post.
    assert room().refusal(SYSTEM, None, "matched", status="matched") is NOTHING_TO_STORE
    assert room().refusal(SYSTEM, None, "rejected", status="closed") is NOTHING_TO_STORE
    # A line that changes no status is the server's to post, in any room.
    assert room("closed").refusal(SYSTEM, None, None, status="closed") is None


def test_the_owner_remembers_the_newest_keys_of_each_sender() -> None:
    owned = room()
    owned.remember(WRITER, None, 1)  # no key: nothing to remember
    assert owned.keys == {}
    for message_id in range(1, 2 * RECENT_KEYS + 2):
        owned.remember(WRITER, f"k{message_id}", message_id)
    owned.remember(APPLICANT, "k1", 999)  # the same key from the other member is another key
    assert owned.keys[(APPLICANT, "k1")] == 999
    newest = 2 * RECENT_KEYS + 1
    assert owned.keys[(WRITER, f"k{newest}")] == newest
    assert (WRITER, "k1") not in owned.keys, "the oldest are forgotten (the database has them)"
    assert RECENT_KEYS <= len(owned.keys) <= 2 * RECENT_KEYS


def test_the_people_of_a_room_are_its_writer_then_its_applicant() -> None:
    assert room().people() == ((WRITER, "alice"), (APPLICANT, "bob"))
