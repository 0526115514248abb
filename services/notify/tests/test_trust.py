"""Leaving, blocking and muting as notify sees them (boards' events, consumed by instance A,
streamed by instance B): a ``left`` alarm, nothing from a blocked user, no bell for a muted
room; changes that arrive out of order end as boards ended them."""

from __future__ import annotations

import httpx
import pytest

from duochat_common.events.schemas import (
    BoardApplied,
    BoardMatched,
    RoomDetail,
    RoomLeft,
    RoomMuted,
    RoomRef,
    UserBlocked,
    UserUnblocked,
)

from .conftest import wait_for_alarms
from .test_triggers import auth, chat, ref


@pytest.fixture
async def http(cluster):
    async with httpx.AsyncClient(base_url=cluster.a.url) as client:
        yield client


def room(room_id: str, writer: int, applicant: int) -> RoomDetail:
    return RoomDetail(
        room_id=room_id,
        board_id=5,
        board_title="Night ride",
        writer=ref(writer),
        applicant=ref(applicant),
    )


async def drain(cluster) -> None:
    """Wait until what was published so far on both streams is handled: one consumer reads
    each stream in order, so a sentinel event's alarm on each comes after everything before it.
    (The group's pending count is no measure here: an earlier test leaves a poison entry that
    is retried for a while before it is dead-lettered.)"""
    user, token = cluster.user()
    writer, writer_token = cluster.user()
    await cluster.publish(chat(f"sentinel-{user}", writer, {user: False}, "sentinel"))
    await cluster.publish(
        BoardApplied(
            board_id=1,
            board_title="sentinel",
            room_id=f"sentinel-{user}",
            writer=ref(writer),
            applicant=ref(user),
        )
    )
    async with httpx.AsyncClient(base_url=cluster.a.url) as http:
        for who in (token, writer_token):
            assert len((await wait_for_alarms(http, who, 1))["items"]) == 1


async def alarms(http, token) -> list[dict]:
    page = (await http.get("/notify/alarms", params={"limit": 100}, headers=auth(token))).json()
    return list(page["items"])


async def test_the_other_member_is_told_when_someone_leaves(cluster, http, sse):
    writer, writer_token = cluster.user()
    applicant, applicant_token = cluster.user()
    async with sse(cluster.b.url, writer_token) as stream:
        await cluster.publish(RoomLeft(room=room("r-left", writer, applicant), by=ref(applicant)))
        event = await stream.next()
    assert event.event == "left"
    alarm = event.data
    assert (alarm["kind"], alarm["roomId"], alarm["boardId"]) == ("left", "r-left", 5)
    assert alarm["from"] == {"id": applicant, "username": f"user{applicant}"}
    assert alarm["preview"] == f"user{applicant} left the chat about Night ride"
    await drain(cluster)
    assert await alarms(http, applicant_token) == []


async def test_nothing_from_a_blocked_user_rings_the_bell(cluster, http, sse):
    blocker, blocker_token = cluster.user()
    blocked, _ = cluster.user()
    friend, _ = cluster.user()
    await cluster.publish(chat("r-b1", blocked, {blocker: False}, "before the block"))
    await drain(cluster)
    assert len(await alarms(http, blocker_token)) == 1

    async with sse(cluster.b.url, blocker_token) as stream:
        await cluster.publish(
            UserBlocked(blocker=ref(blocker), blocked=ref(blocked), version=1, rooms=[])
        )
        # What was unread from them is read now, and the open tab is told.
        read = await stream.next()
        assert read.event == "read" and read.data["unreadCount"] == 0 and read.data["ids"]
        await cluster.publish(chat("r-b1", blocked, {blocker: False}, "after", message_id=2))
        await cluster.publish(
            BoardApplied(
                board_id=6,
                board_title="t",
                room_id="r-b2",
                writer=ref(blocker),
                applicant=ref(blocked),
            )
        )
        await cluster.publish(RoomLeft(room=room("r-b1", blocker, blocked), by=ref(blocked)))
        await cluster.publish(
            BoardMatched(
                board_id=7,
                board_title="t",
                writer=ref(blocked),
                matched=RoomRef(room_id="r-x", applicant=ref(friend)),
                rejected=[RoomRef(room_id="r-b3", applicant=ref(blocker))],
            )
        )
        await cluster.publish(chat("r-f", friend, {blocker: False}, "from a friend"))
        event = await stream.next()
        assert (event.event, event.data["preview"]) == ("message", "from a friend")
        await drain(cluster)
        await stream.quiet(0.5)
    listed = await alarms(http, blocker_token)
    assert [a["preview"] for a in listed] == ["from a friend", "before the block"]
    assert [a["read"] for a in listed] == [False, True]

    # Unblocked: they ring again. An older change arriving late changes nothing.
    await cluster.publish(UserUnblocked(blocker=ref(blocker), blocked=ref(blocked), version=4))
    await cluster.publish(
        UserBlocked(blocker=ref(blocker), blocked=ref(blocked), version=3, rooms=[])
    )
    await drain(cluster)  # boards' and chat's streams are read side by side: order them here
    await cluster.publish(chat("r-b1", blocked, {blocker: False}, "hello again", message_id=3))
    await drain(cluster)
    assert (await alarms(http, blocker_token))[0]["preview"] == "hello again"


async def test_a_muted_room_rings_no_bell(cluster, http, sse):
    user, token = cluster.user()
    other, _ = cluster.user()
    await cluster.publish(chat("r-m", other, {user: False}, "unread before"))
    await drain(cluster)

    async with sse(cluster.b.url, token) as stream:
        await cluster.publish(RoomMuted(room_id="r-m", user=ref(user), muted=True, version=1))
        read = await stream.next()
        assert (read.event, read.data["roomId"], read.data["unreadCount"]) == ("read", "r-m", 0)
        await cluster.publish(chat("r-m", other, {user: False}, "muted", message_id=2))
        await cluster.publish(RoomLeft(room=room("r-m", other, user), by=ref(other)))
        await cluster.publish(chat("r-loud", other, {user: False}, "another room"))
        event = await stream.next()
        assert (event.event, event.data["roomId"]) == ("message", "r-loud")
        await drain(cluster)
        await stream.quiet(0.5)
    # Another member's mute is theirs alone.
    assert [a["roomId"] for a in await alarms(http, token) if not a["read"]] == ["r-loud"]
    await cluster.publish(RoomMuted(room_id="r-m", user=ref(user), muted=False, version=2))
    await cluster.publish(RoomMuted(room_id="r-m", user=ref(user), muted=True, version=1))  # late
    await drain(cluster)
    await cluster.publish(chat("r-m", other, {user: False}, "unmuted", message_id=3))
    await drain(cluster)
    assert (await alarms(http, token))[0]["preview"] == "unmuted"
