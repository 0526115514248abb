"""The alarm list, marking read, idempotent storage and pruning."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select, update

from duochat_common.db import Database, utcnow
from duochat_common.events.schemas import BoardApplied, ChatMessageSent, Recipient, UserRef
from duochat_common.redis_store import create_redis
from duochat_common.testing import REDIS_URL, unique_prefix
from duochat_notify import service
from duochat_notify.config import Settings
from duochat_notify.delivery import Delivery
from duochat_notify.models import Alarm
from duochat_notify.service import NewAlarm
from duochat_notify.triggers import Triggers


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def chat(room: str, to: int, text: str, message_id: int = 1) -> ChatMessageSent:
    return ChatMessageSent(
        message_id=message_id,
        room_id=room,
        type="TALK",
        sender=UserRef(id=1, username="sender"),
        preview=text,
        created_at=datetime.now(UTC),
        recipients=[Recipient(id=to, username=f"user{to}", in_room=False)],
    )


@pytest.fixture
async def http(cluster):
    async with httpx.AsyncClient(base_url=cluster.b.url) as client:
        yield client


async def test_list_pages_newest_first(cluster, http, alarms_of):
    user, token = cluster.user()
    for n in range(25):
        await cluster.publish(chat(f"room-{n % 3}", user, f"m{n}", message_id=n))
    await alarms_of(http, token, 25)
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 10, **({"cursor": cursor} if cursor else {})}
        page = (await http.get("/notify/alarms", params=params, headers=auth(token))).json()
        pages += 1
        assert page["unreadCount"] == 25
        seen += page["items"]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert pages == 3
    assert [a["preview"] for a in seen] == [f"m{n}" for n in reversed(range(25))]
    ids = [a["id"] for a in seen]
    assert ids == sorted(ids, reverse=True)


async def test_a_batch_of_events_in_one_stream_entry_makes_every_alarm_in_order(
    cluster, http, alarms_of
):
    user, token = cluster.user()
    await cluster.publish_entry([chat("room-b", user, f"b{n}", message_id=n) for n in range(7)])
    await alarms_of(http, token, 7)
    page = (await http.get("/notify/alarms", params={"limit": 50}, headers=auth(token))).json()
    assert [a["preview"] for a in page["items"]] == [f"b{n}" for n in reversed(range(7))]


async def test_mark_read_by_ids_and_by_room_tells_open_streams(cluster, http, alarms_of, sse):
    user, token = cluster.user()
    for n in range(4):
        await cluster.publish(chat("room-x" if n < 2 else "room-y", user, f"m{n}", message_id=n))
    items = (await alarms_of(http, token, 4))["items"]
    by_preview = {a["preview"]: a["id"] for a in items}
    async with sse(cluster.a.url, token) as stream:
        reply = await http.post(
            "/notify/alarms/read", json={"ids": [by_preview["m3"]]}, headers=auth(token)
        )
        assert reply.json() == {"updated": 1, "unreadCount": 3}
        event = await stream.next()
        assert (event.event, event.data) == (
            "read",
            {"roomId": None, "ids": [by_preview["m3"]], "unreadCount": 3},
        )
        reply = await http.post(
            "/notify/alarms/read", json={"roomId": "room-x"}, headers=auth(token)
        )
        assert reply.json() == {"updated": 2, "unreadCount": 1}
        assert (await stream.next()).data == {"roomId": "room-x", "ids": None, "unreadCount": 1}
        # Already read: nothing changes and the streams are not bothered.
        reply = await http.post(
            "/notify/alarms/read", json={"roomId": "room-x"}, headers=auth(token)
        )
        assert reply.json() == {"updated": 0, "unreadCount": 1}
        await stream.quiet(0.3)
    page = (await http.get("/notify/alarms", headers=auth(token))).json()
    assert {a["preview"]: a["read"] for a in page["items"]} == {
        "m0": True,
        "m1": True,
        "m2": False,
        "m3": True,
    }


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("POST", "/notify/alarms/read", {"json": {}}),
        ("POST", "/notify/alarms/read", {"json": {"roomId": "r", "ids": [1]}}),
        ("POST", "/notify/alarms/read", {"json": {"ids": []}}),
        ("POST", "/notify/alarms/read", {"json": {"ids": ["x"]}}),
        ("POST", "/notify/alarms/read", {"json": {"ids": list(range(501))}}),
        ("POST", "/notify/alarms/read", {"json": {"roomId": ""}}),
        ("POST", "/notify/alarms/read", {"json": {"roomId": "r" * 65}}),
        ("POST", "/notify/alarms/read", {"json": {"roomId": "r", "userId": 1}}),
        ("POST", "/notify/alarms/read", {"json": [1, 2]}),
        (
            "POST",
            "/notify/alarms/read",
            {"content": b"{", "headers": {"content-type": "application/json"}},
        ),
        ("GET", "/notify/alarms", {"params": {"limit": 0}}),
        ("GET", "/notify/alarms", {"params": {"limit": 101}}),
        ("GET", "/notify/alarms", {"params": {"limit": "ten"}}),
        ("GET", "/notify/alarms", {"params": {"cursor": "abc"}}),
        ("GET", "/notify/alarms", {"params": {"cursor": "9" * 40}}),
        ("GET", "/notify/alarms", {"params": {"cursor": "-1"}}),
        # Issue 12, finding 9: these three answered 500.
        ("GET", "/notify/alarms", {"params": {"cursor": "9999999999999999999"}}),
        ("GET", "/notify/alarms", {"params": {"cursor": "\u00b2"}}),
        ("POST", "/notify/alarms/read", {"json": {"ids": [9223372036854775808]}}),
        ("POST", "/notify/alarms/read", {"json": {"ids": [-9223372036854775809]}}),
    ],
)
async def test_bad_input_is_a_4xx(cluster, http, method, path, kwargs):
    _, token = cluster.user()
    headers = {**auth(token), **kwargs.pop("headers", {})}
    reply = await http.request(method, path, headers=headers, **kwargs)
    assert 400 <= reply.status_code < 500, reply.text
    assert "code" in reply.json()


@pytest.fixture
async def parts(database_url, redis_shape):
    """Notify's pieces on the session database and a fresh Redis namespace."""
    url, on_cluster = redis_shape
    settings = Settings(
        database_url=database_url,
        redis_url=url,
        redis_cluster=on_cluster,
        redis_prefix=unique_prefix(),
    )
    db = Database(database_url)
    redis = create_redis(url, cluster=on_cluster)
    delivery = Delivery(redis, settings)
    try:
        yield db, delivery, Triggers(db=db, delivery=delivery, preview_max_chars=100)
    finally:
        keys = [k async for k in redis.scan_iter(match=settings.key("*"))]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
        await db.dispose()


async def test_handling_an_event_twice_stores_and_pushes_once(parts, cluster):
    db, delivery, triggers = parts
    user, _ = cluster.user()
    envelope = chat("room-idem", user, "twice").envelope()
    await triggers.handle(envelope)
    await triggers.handle(envelope)  # a redelivery that got past the consumer's own marker
    async with db.session() as session:
        count = await session.scalar(
            select(func.count()).where(Alarm.user_id == user, Alarm.source_event_id == envelope.id)
        )
    assert count == 1
    entries = await delivery.redis.xrange(delivery.stream_key(user))
    assert len(entries) == 1
    assert json.loads(entries[0][1]["data"])["preview"] == "twice"


async def test_an_alarm_stored_but_not_pushed_is_pushed_on_redelivery(parts, cluster):
    """A crash between the database commit and the push loses nothing: the retry pushes."""
    db, delivery, triggers = parts
    user, _ = cluster.user()
    envelope = chat("room-crash", user, "after crash").envelope()
    alarm = NewAlarm(
        user_id=user,
        kind="message",
        source_event_id=envelope.id,
        preview="after crash",
        created_at=utcnow(),
        room_id="room-crash",
        message_id=1,
    )
    async with db.session() as session:
        await service.store_alarms(session=session, alarms=[alarm])
    await triggers.handle(envelope)
    assert len(await delivery.redis.xrange(delivery.stream_key(user))) == 1


async def test_prune_deletes_only_old_read_alarms(parts, cluster):
    db, _, _ = parts
    user, _ = cluster.user()
    now = utcnow()
    alarms = [
        NewAlarm(
            user_id=user,
            kind="message",
            source_event_id=f"prune-{user}-{n}",
            preview=str(n),
            created_at=now,
        )
        for n in range(4)
    ]
    async with db.session() as session:
        stored = await service.store_alarms(session=session, alarms=alarms)
        old, recent, unread_old, _ = stored
        await session.execute(
            update(Alarm).where(Alarm.id == old.id).values(read_at=now - timedelta(days=40))
        )
        await session.execute(
            update(Alarm).where(Alarm.id == recent.id).values(read_at=now - timedelta(days=1))
        )
        await session.execute(
            update(Alarm)
            .where(Alarm.id == unread_old.id)
            .values(created_at=now - timedelta(days=90))
        )
        await session.commit()
        pruned = await service.prune_read(session=session, read_before=now - timedelta(days=30))
        assert pruned >= 1
        left = set(await session.scalars(select(Alarm.preview).where(Alarm.user_id == user)))
    assert left == {"1", "2", "3"}


async def test_the_periodic_prune_runs(database_url, signer, app_client, cluster):
    user, token = cluster.user()
    settings = Settings(
        database_url=database_url,
        redis_url=REDIS_URL,
        redis_prefix=unique_prefix(),
        auth_jwks_json=json.dumps(signer.jwks()),
        consume_events=False,
        prune_read_after_days=0,
        prune_interval_seconds=0.2,
    )
    db = Database(database_url)
    async with db.session() as session:
        await service.store_alarms(
            session=session,
            alarms=[
                NewAlarm(
                    user_id=user,
                    kind="applied",
                    source_event_id=f"p-{user}",
                    preview="p",
                    created_at=utcnow(),
                )
            ],
        )
    async with app_client(settings) as http:
        page = (await http.get("/notify/alarms", headers=auth(token))).json()
        assert len(page["items"]) == 1
        await http.post(
            "/notify/alarms/read", json={"ids": [page["items"][0]["id"]]}, headers=auth(token)
        )
        for _ in range(50):
            if not (await http.get("/notify/alarms", headers=auth(token))).json()["items"]:
                break
            await asyncio.sleep(0.1)
        assert (await http.get("/notify/alarms", headers=auth(token))).json()["items"] == []
    await db.dispose()


async def test_the_bell_lists_one_entry_per_room_with_its_unread_count(cluster, http, alarms_of):
    user, token = cluster.user()
    writer = UserRef(id=user, username=f"user{user}")
    texts = [
        ("room-a", "a0"),
        ("room-a", "a1"),
        ("room-b", "b0"),
        ("room-a", "a2"),
        ("room-b", "b1"),
    ]
    for n, (room, text) in enumerate(texts):
        await cluster.publish(chat(room, user, text, message_id=n + 1))
    applicant = UserRef(id=1, username="sender")
    await cluster.publish(
        BoardApplied(
            board_id=9, board_title="t", room_id="room-c", writer=writer, applicant=applicant
        )
    )
    await alarms_of(http, token, 6)

    async def bell(**params: object) -> dict:
        reply = await http.get("/notify/alarms/by-room", params=params, headers=auth(token))
        assert reply.status_code == 200, reply.text
        return reply.json()

    page = await bell()
    # Newest first: room-b's newest message, room-a's, then the application.
    assert [(a["kind"], a["roomId"], a["preview"], a["count"]) for a in page["items"]] == [
        ("message", "room-b", "b1", 2),
        ("message", "room-a", "a2", 3),
        ("applied", "room-c", "sender applied to t", 1),
    ]
    assert page["unreadCount"] == 3 and page["nextCursor"] is None
    # The raw list still has every alarm, and counts each.
    raw = (await http.get("/notify/alarms", headers=auth(token))).json()
    assert len(raw["items"]) == 6 and raw["unreadCount"] == 6

    # Pages hold whole entries: a room never shows twice.
    first = await bell(limit=2)
    second = await bell(limit=2, cursor=first["nextCursor"])
    assert [a["preview"] for a in first["items"] + second["items"]] == [
        "b1",
        "a2",
        "sender applied to t",
    ]
    assert second["nextCursor"] is None

    # Reading room-a leaves its entry read with nothing counted; a new message counts again.
    await http.post("/notify/alarms/read", json={"roomId": "room-a"}, headers=auth(token))
    page = await bell()
    assert [(a["preview"], a["count"], a["read"]) for a in page["items"]] == [
        ("b1", 2, False),
        ("a2", 0, True),
        ("sender applied to t", 1, False),
    ]
    assert page["unreadCount"] == 2
    await cluster.publish(chat("room-a", user, "a3", message_id=9))
    await alarms_of(http, token, 7)
    page = await bell()
    assert [(a["preview"], a["count"]) for a in page["items"]] == [
        ("a3", 1),
        ("b1", 2),
        ("sender applied to t", 1),
    ]
    assert page["unreadCount"] == 3

    # Another user's bell is empty; without a token there is none.
    _, other = cluster.user()
    theirs = await http.get("/notify/alarms/by-room", headers=auth(other))
    assert theirs.json() == {"items": [], "unreadCount": 0, "nextCursor": None}
    assert (await http.get("/notify/alarms/by-room")).status_code == 401
    bad = await http.get("/notify/alarms/by-room", params={"cursor": "x"}, headers=auth(token))
    assert bad.status_code == 400
