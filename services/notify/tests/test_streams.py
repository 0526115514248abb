"""Delivery across instances: exactly once, every tab, exact replay, limits, keep-alive."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx

from duochat_common.events.schemas import ChatMessageSent, Recipient, UserRef


def message(
    room: str, sender: tuple[int, str], to: int, text: str, msg_id: int = 1
) -> ChatMessageSent:
    return ChatMessageSent(
        message_id=msg_id,
        room_id=room,
        type="TALK",
        sender=UserRef(id=sender[0], username=sender[1]),
        preview=text,
        created_at=datetime.now(UTC),
        recipients=[
            Recipient(id=sender[0], username=sender[1], in_room=True),
            Recipient(id=to, username=f"user{to}", in_room=False),
        ],
    )


async def test_event_consumed_by_one_instance_reaches_a_stream_on_the_other_once(cluster, sse):
    user, token = cluster.user()
    sender = (cluster.user()[0], "writer")
    async with sse(cluster.b.url, token) as stream:
        await cluster.publish(message("room-x", sender, user, "hello there"))
        event = await stream.next()
        assert event.event == "message"
        assert event.id
        alarm = event.data
        assert alarm["kind"] == "message"
        assert alarm["roomId"] == "room-x"
        assert alarm["from"] == {"id": sender[0], "username": "writer"}
        assert alarm["preview"] == "hello there"
        assert alarm["read"] is False
        assert set(alarm) == {
            "id",
            "kind",
            "roomId",
            "boardId",
            "boardTitle",
            "from",
            "preview",
            "createdAt",
            "read",
        }
        await stream.quiet(1.0)


async def test_every_tab_on_every_instance_gets_every_event_once(cluster, sse):
    user, token = cluster.user()
    sender = (cluster.user()[0], "writer")
    async with (
        sse(cluster.a.url, token) as tab1,
        sse(cluster.b.url, token) as tab2,
        sse(cluster.b.url, token) as tab3,
    ):
        for n in range(10):
            await cluster.publish(message("room-tabs", sender, user, f"m{n}", msg_id=n))
        for tab in (tab1, tab2, tab3):
            events = await tab.take(10)
            assert [e.data["preview"] for e in events] == [f"m{n}" for n in range(10)]
            ids = [e.id for e in events]
            assert len(set(ids)) == 10
        assert [e.id for e in events] == ids
        for tab in (tab1, tab2, tab3):
            await tab.quiet(0.5)


async def test_reconnect_with_last_event_id_replays_exactly_the_missed_events(cluster, sse):
    user, token = cluster.user()
    sender = (cluster.user()[0], "writer")
    async with sse(cluster.b.url, token) as first:
        for n in range(3):
            await cluster.publish(message("room-r", sender, user, f"seen{n}", msg_id=n))
        seen = await first.take(3)
        last_id = seen[-1].id
    for n in range(4):
        await cluster.publish(message("room-r", sender, user, f"missed{n}", msg_id=10 + n))
    # Wait until A has consumed all four (they are in the list) before reconnecting.
    async with httpx.AsyncClient(base_url=cluster.a.url) as http:
        for _ in range(100):
            page = (
                await http.get("/notify/alarms", headers={"Authorization": f"Bearer {token}"})
            ).json()
            if page["unreadCount"] == 7:
                break
            await asyncio.sleep(0.05)
    # Reconnect to the other instance, as a browser behind the load balancer might.
    async with sse(cluster.a.url, token, last_event_id=last_id) as second:
        replayed = await second.take(4)
        assert [e.data["preview"] for e in replayed] == [f"missed{n}" for n in range(4)]
        await second.quiet(0.5)
        await cluster.publish(message("room-r", sender, user, "live", msg_id=20))
        assert (await second.next()).data["preview"] == "live"
        await second.quiet(0.3)


async def test_replay_while_another_tab_is_live_on_the_same_instance(cluster, sse):
    user, token = cluster.user()
    sender = (cluster.user()[0], "writer")
    async with sse(cluster.b.url, token) as live:
        await cluster.publish(message("room-t", sender, user, "one", msg_id=1))
        one = await live.next()
        await cluster.publish(message("room-t", sender, user, "two", msg_id=2))
        await cluster.publish(message("room-t", sender, user, "three", msg_id=3))
        await live.take(2)
        # The instance's reader is now past "one": the new tab must still get two and three.
        async with sse(cluster.b.url, token, last_event_id=one.id) as late:
            got = await late.take(2)
            assert [e.data["preview"] for e in got] == ["two", "three"]
            await late.quiet(0.3)


async def test_a_malformed_last_event_id_starts_from_now(cluster, sse):
    user, token = cluster.user()
    sender = (cluster.user()[0], "writer")
    await cluster.publish(message("room-m", sender, user, "old", msg_id=1))
    await asyncio.sleep(0.5)
    async with sse(cluster.b.url, token, last_event_id="not-an-id") as stream:
        await stream.quiet(0.3)
        await cluster.publish(message("room-m", sender, user, "new", msg_id=2))
        assert (await stream.next()).data["preview"] == "new"


async def test_stream_headers_and_keepalive(cluster):
    _, token = cluster.user()
    async with httpx.AsyncClient(
        base_url=cluster.b.url, timeout=httpx.Timeout(5, read=None)
    ) as http:
        ticket = (
            await http.post("/notify/ticket", headers={"Authorization": f"Bearer {token}"})
        ).json()
        assert set(ticket) == {"ticket", "expiresIn"}
        assert 30 <= ticket["expiresIn"] <= 60
        async with http.stream("GET", "/notify/stream", params={"ticket": ticket["ticket"]}) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            assert r.headers["x-accel-buffering"] == "no"
            assert r.headers["cache-control"] == "no-cache"
            comments = []
            started = asyncio.get_running_loop().time()
            async for line in r.aiter_lines():
                if line.startswith(":"):
                    comments.append(line)
                if len(comments) == 3:
                    break
            elapsed = asyncio.get_running_loop().time() - started
            # "connected", then two keep-alives at the configured 1 s interval.
            assert comments[0].startswith(": connected")
            assert all(c.startswith(": ping") for c in comments[1:])
            assert elapsed < 3.5


async def test_streams_per_user_are_capped_across_instances(cluster, sse):
    _, token = cluster.user()
    async with sse(cluster.a.url, token), sse(cluster.b.url, token):
        async with sse(cluster.b.url, token):
            async with httpx.AsyncClient(base_url=cluster.a.url) as http:
                ticket = (
                    await http.post("/notify/ticket", headers={"Authorization": f"Bearer {token}"})
                ).json()["ticket"]
                over = await http.get("/notify/stream", params={"ticket": ticket})
                assert over.status_code == 429
                assert over.json()["code"] == "too_many_streams"
                assert "retry-after" in over.headers
        # One closed: a new one fits again.
        async with sse(cluster.a.url, token) as again:
            assert not again.ended.is_set()
    # Someone else is not affected by this user's streams.
    _, other = cluster.user()
    async with sse(cluster.a.url, other):
        pass


async def test_a_last_event_id_that_is_not_ascii_starts_from_now(cluster, sse):
    # Issue 12, finding 9: "\xb2-0" passed isdigit() and then failed int(): a 500.
    _, token = cluster.user()
    async with sse(cluster.a.url, token, headers={"Last-Event-ID": b"\xb2-0"}) as stream:
        await stream.quiet(0.2)
