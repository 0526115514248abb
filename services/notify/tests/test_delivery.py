"""The push step on its own: atomic mark-and-append, copies to the holders' inboxes, and the
presence hold (no live alarm for a recipient who may be in the room on another chat instance)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from redis.crc import key_slot

from duochat_common.db import Database
from duochat_common.events.schemas import ChatMessageSent, ChatRoomRead, Recipient, UserRef
from duochat_common.redis_store import create_redis
from duochat_common.testing import unique_prefix
from duochat_notify import service
from duochat_notify.config import Settings
from duochat_notify.delivery import Delivery
from duochat_notify.held import HeldPushes
from duochat_notify.models import Alarm
from duochat_notify.service import NewAlarm
from duochat_notify.slots import StreamSlots
from duochat_notify.triggers import Triggers

HOLD = 0.3


@dataclass
class Pieces:
    db: Database
    redis: Any
    delivery: Delivery
    held: HeldPushes
    triggers: Triggers
    settings: Settings

    async def entries(self, user_id: int) -> list[Any]:
        return list(await self.redis.xrange(self.delivery.stream_key(user_id)))


@pytest.fixture
async def pieces(database_url: str, redis_shape: tuple[str, bool]) -> AsyncIterator[Pieces]:
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
    held = HeldPushes(redis, key=delivery.keys.held(), db=db, delivery=delivery, hold_seconds=HOLD)
    triggers = Triggers(db=db, delivery=delivery, preview_max_chars=100, held=held)
    try:
        yield Pieces(db, redis, delivery, held, triggers, settings)
    finally:
        keys = [k async for k in redis.scan_iter(match=settings.key("*"), count=1000)]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
        await db.dispose()


def users(n: int) -> list[int]:
    first = random.randint(10**6, 10**9)
    return list(range(first, first + n))


async def stored_alarm(pieces: Pieces, user_id: int, source: str) -> Alarm:
    new = NewAlarm(
        user_id=user_id,
        kind="applied",
        source_event_id=source,
        preview="p",
        created_at=datetime.now(UTC).replace(tzinfo=None),
    )
    async with pieces.db.session() as session:
        (alarm,) = await service.store_alarms(session=session, alarms=[new])
    return alarm


async def test_a_push_repeated_after_a_crash_appends_once_and_copies_again(pieces):
    (user,) = users(1)
    slots = StreamSlots(pieces.redis, pieces.settings, instance="i1")
    await slots.acquire(user)
    alarm = await stored_alarm(pieces, user, "crash-after-script")
    assert await pieces.delivery.push_alarms([alarm]) == 1
    # The process died after the script and before, or during, the copies: the redelivered
    # event's push appends nothing new but copies the same entry id to the inbox again.
    assert await pieces.delivery.push_alarms([alarm]) == 0
    (entry,) = await pieces.entries(user)
    inbox: Any = await pieces.redis.xrange(pieces.delivery.keys.inbox("i1"))
    assert [fields["id"] for _id, fields in inbox] == [entry[0], entry[0]]


async def test_the_push_touches_one_slot_per_user(pieces):
    """The keys of one push share a hash slot (computed as a cluster does, on either shape)."""
    (user,) = users(1)
    keys = pieces.delivery.keys
    slots = {
        key_slot(key.encode())
        for key in (keys.user_stream(user), keys.slots(user), keys.pushed(user, 7))
    }
    assert len(slots) == 1


def message(room: str, to: dict[int, bool], message_id: int = 5) -> ChatMessageSent:
    """A TALK whose recipients' presence chat could not read (``to``: id -> inRoom)."""
    return ChatMessageSent(
        message_id=message_id,
        room_id=room,
        type="TALK",
        sender=UserRef(id=1, username="sender"),
        preview="are you there?",
        created_at=datetime.now(UTC),
        recipients=[
            Recipient(id=uid, username=f"user{uid}", in_room=in_room, presence_known=False)
            for uid, in_room in to.items()
        ],
    )


async def test_presence_unknown_holds_the_push_and_a_read_mark_cancels_it(pieces):
    elsewhere, away, known_away = users(3)
    event = message("room-hold", {elsewhere: False, away: False})
    event.recipients.append(Recipient(id=known_away, username="k", in_room=False))
    await pieces.triggers.handle(event.envelope())
    # Presence known and absent: pushed at once. Unknown: nothing yet.
    assert len(await pieces.entries(known_away)) == 1
    assert await pieces.entries(elsewhere) == [] and await pieces.entries(away) == []
    # The member in the room on another chat instance reads the message there.
    read = ChatRoomRead(
        room_id="room-hold", user=UserRef(id=elsewhere, username="e"), last_read_id=5
    )
    await pieces.triggers.handle(read.envelope())
    assert await pieces.held.release_due() == 0  # not due yet
    await asyncio.sleep(HOLD + 0.05)
    assert await pieces.held.release_due() == 1
    (pushed,) = await pieces.entries(away)
    assert pushed[1]["event"] == "message"
    assert [e[1]["event"] for e in await pieces.entries(elsewhere)] == ["read"]
    assert await pieces.redis.zcard(pieces.delivery.keys.held()) == 0


async def test_a_held_alarm_redelivered_is_pushed_once(pieces):
    (away,) = users(1)
    envelope = message("room-again", {away: False}).envelope()
    await pieces.triggers.handle(envelope)
    await asyncio.sleep(HOLD + 0.05)
    assert await pieces.held.release_due() == 1
    await pieces.triggers.handle(envelope)  # redelivered after it was released
    await asyncio.sleep(HOLD + 0.05)
    assert await pieces.held.release_due() == 0
    assert len(await pieces.entries(away)) == 1


async def test_in_room_on_the_sending_instance_never_alarms_even_if_presence_is_unknown(pieces):
    (here,) = users(1)
    await pieces.triggers.handle(message("room-here", {here: True}).envelope())
    await asyncio.sleep(HOLD + 0.05)
    await pieces.held.release_due()
    assert await pieces.entries(here) == []
