"""Which events become which alarms, once each, and how reading clears them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import pytest

from duochat_common.events.schemas import (
    BoardApplied,
    BoardClosed,
    BoardCreated,
    BoardMatched,
    ChatMessageSent,
    ChatRoomRead,
    Recipient,
    RoomRef,
    UserRef,
)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def ref(user_id: int) -> UserRef:
    return UserRef(id=user_id, username=f"user{user_id}")


def chat(
    room: str,
    sender: int,
    recipients: dict[int, bool],
    text: str = "hi",
    *,
    type: str = "TALK",
    message_id: int = 1,
) -> ChatMessageSent:
    return ChatMessageSent(
        message_id=message_id,
        room_id=room,
        type=type,
        sender=ref(sender),
        preview=text,
        created_at=datetime.now(UTC),
        recipients=[
            Recipient(id=uid, username=f"user{uid}", in_room=in_room)
            for uid, in_room in recipients.items()
        ],
    )


@pytest.fixture
async def http(cluster):
    async with httpx.AsyncClient(base_url=cluster.a.url) as client:
        yield client


async def drain(cluster) -> None:
    """Wait until notify's group has consumed everything published so far."""
    redis = cluster.bus.redis
    for _ in range(200):
        pending = 0
        for stream in ("events.boards", "events.chat"):
            key = cluster.settings.key(stream)
            groups = await redis.xinfo_groups(key) if await redis.exists(key) else []
            for group in groups:
                if group["name"] == "notify":
                    pending += int(group.get("lag") or 0) + int(group["pending"])
        if pending == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("notify did not consume the events")


async def test_applied_goes_to_the_writer(cluster, http, alarms_of):
    writer, writer_token = cluster.user()
    applicant, applicant_token = cluster.user()
    await cluster.publish(
        BoardApplied(
            board_id=7,
            board_title="Morning run",
            room_id="room-7-a",
            writer=ref(writer),
            applicant=ref(applicant),
        )
    )
    [alarm] = (await alarms_of(http, writer_token, 1))["items"]
    assert alarm["kind"] == "applied"
    assert alarm["roomId"] == "room-7-a"
    assert alarm["boardId"] == 7
    assert alarm["boardTitle"] == "Morning run"
    assert alarm["from"] == {"id": applicant, "username": f"user{applicant}"}
    assert f"user{applicant}" in alarm["preview"]
    assert alarm["read"] is False
    assert alarm["createdAt"].endswith("Z")
    await drain(cluster)
    assert (await http.get("/notify/alarms", headers=auth(applicant_token))).json()["items"] == []


async def test_matched_and_rejected_go_to_the_applicants(cluster, http, alarms_of, sse):
    writer, writer_token = cluster.user()
    chosen, chosen_token = cluster.user()
    loser1, loser1_token = cluster.user()
    loser2, loser2_token = cluster.user()
    async with sse(cluster.b.url, loser1_token) as loser_stream:
        await cluster.publish(
            BoardMatched(
                board_id=8,
                board_title="Study mate",
                writer=ref(writer),
                matched=RoomRef(room_id="r-chosen", applicant=ref(chosen)),
                rejected=[
                    RoomRef(room_id="r-l1", applicant=ref(loser1)),
                    RoomRef(room_id="r-l2", applicant=ref(loser2)),
                ],
            )
        )
        event = await loser_stream.next()
        assert event.event == "rejected"
        assert event.data["roomId"] == "r-l1"
    [matched] = (await alarms_of(http, chosen_token, 1))["items"]
    assert (matched["kind"], matched["roomId"], matched["boardId"]) == ("matched", "r-chosen", 8)
    assert matched["from"]["id"] == writer
    for token, room in ((loser1_token, "r-l1"), (loser2_token, "r-l2")):
        [rejected] = (await alarms_of(http, token, 1))["items"]
        assert (rejected["kind"], rejected["roomId"], rejected["boardTitle"]) == (
            "rejected",
            room,
            "Study mate",
        )
    await drain(cluster)
    assert (await http.get("/notify/alarms", headers=auth(writer_token))).json()["items"] == []


async def test_closed_rejects_every_applicant(cluster, http, alarms_of):
    writer, _ = cluster.user()
    applicants = [cluster.user() for _ in range(3)]
    await cluster.publish(
        BoardClosed(
            board_id=9,
            board_title="Duo for ranked",
            writer=ref(writer),
            rooms=[RoomRef(room_id=f"r9-{uid}", applicant=ref(uid)) for uid, _ in applicants],
        )
    )
    for uid, token in applicants:
        [alarm] = (await alarms_of(http, token, 1))["items"]
        assert alarm["kind"] == "rejected"
        assert alarm["roomId"] == f"r9-{uid}"
        assert "closed" in alarm["preview"]


async def test_message_alarms_only_recipients_out_of_the_room(cluster, http, alarms_of):
    sender, sender_token = cluster.user()
    away, away_token = cluster.user()
    present, present_token = cluster.user()
    await cluster.publish(chat("room-m", sender, {sender: True, away: False, present: True}, "yo"))
    for silent in ("ENTER", "QUIT", "SYSTEM"):
        await cluster.publish(chat("room-m", sender, {away: False}, silent, type=silent))
    long_text = "word " * 100
    await cluster.publish(chat("room-m", sender, {away: False}, long_text, message_id=2))
    await drain(cluster)
    items = (await alarms_of(http, away_token, 2))["items"]
    assert [a["kind"] for a in items] == ["message", "message"]
    assert items[1]["preview"] == "yo"
    assert len(items[0]["preview"]) <= 100
    assert items[0]["preview"].endswith("…")
    for token in (sender_token, present_token):
        assert (await http.get("/notify/alarms", headers=auth(token))).json()["items"] == []


async def test_a_redelivered_event_alarms_and_streams_once(cluster, http, alarms_of, sse):
    sender, _ = cluster.user()
    user, token = cluster.user()
    event = chat("room-dup", sender, {user: False}, "only once")
    envelope = event.envelope()
    async with sse(cluster.b.url, token) as stream:
        for _ in range(3):  # a producer retrying after a lost reply publishes the same envelope
            await cluster.bus.publish(cluster.settings.key("events.chat"), envelope)
        assert (await stream.next()).data["preview"] == "only once"
        await drain(cluster)
        await stream.quiet(0.5)
    page = await alarms_of(http, token, 1)
    assert len(page["items"]) == 1


async def test_other_and_broken_events_are_ignored_or_dead_lettered(cluster, http, alarms_of):
    writer, _ = cluster.user()
    user, token = cluster.user()
    await cluster.publish(BoardCreated(board_id=1, title="t", writer=ref(writer)))
    raw_key = cluster.settings.key("events.chat")
    await cluster.bus.redis.xadd(raw_key, {"event": "{not json"})
    await cluster.bus.redis.xadd(
        raw_key,
        {"event": '{"type": "chat.message.sent", "data": {"roomId": 5}}'},
    )
    await cluster.publish(chat("room-after", writer, {user: False}, "still working"))
    [alarm] = (await alarms_of(http, token, 1))["items"]
    assert alarm["preview"] == "still working"


async def test_room_read_event_marks_that_rooms_alarms_read(cluster, http, alarms_of, sse):
    sender, _ = cluster.user()
    user, token = cluster.user()
    for n in (1, 2, 3):
        await cluster.publish(chat("room-a", sender, {user: False}, f"a{n}", message_id=n))
    await cluster.publish(chat("room-b", sender, {user: False}, "b", message_id=4))
    await cluster.publish(
        BoardApplied(
            board_id=3, board_title="t", room_id="room-a", writer=ref(user), applicant=ref(sender)
        )
    )
    assert (await alarms_of(http, token, 5))["unreadCount"] == 5
    async with sse(cluster.b.url, token) as stream:
        # Chat's read mark up to message 2: message 3 arrived later and stays unread.
        await cluster.publish(ChatRoomRead(room_id="room-a", user=ref(user), last_read_id=2))
        event = await stream.next()
        assert event.event == "read"
        assert event.data == {"roomId": "room-a", "ids": None, "unreadCount": 2}
    page = (await http.get("/notify/alarms", headers=auth(token))).json()
    unread = sorted(a["preview"] for a in page["items"] if not a["read"])
    assert unread == ["a3", "b"]
    assert page["unreadCount"] == 2


async def test_a_burst_is_handled_in_stream_order(cluster, http, alarms_of, sse):
    """Events that arrive in one batch: a read mark in the middle clears only what came before
    it, and the stream sees everything in order."""
    sender, _ = cluster.user()
    user, token = cluster.user()
    first = [chat("room-burst", sender, {user: False}, f"m{n}", message_id=n) for n in range(25)]
    read = ChatRoomRead(room_id="room-burst", user=ref(user), last_read_id=24)
    second = [
        chat("room-burst", sender, {user: False}, f"m{n}", message_id=n) for n in range(25, 50)
    ]
    async with sse(cluster.b.url, token) as stream:
        await cluster.bus.publish_many(
            cluster.settings.key("events.chat"),
            [e.envelope() for e in [*first, read, *second]],
        )
        events = await stream.take(51)
        names = [e.event for e in events]
        assert names == ["message"] * 25 + ["read"] + ["message"] * 25
        assert [e.data["preview"] for e in events if e.event == "message"] == [
            f"m{n}" for n in range(50)
        ]
        assert events[25].data["unreadCount"] == 0
        await stream.quiet(0.3)
    page = await alarms_of(http, token, 50)
    assert page["unreadCount"] == 25
