"""Faults between notify and Redis, on real processes through a loopback proxy the test drives.

- A consumer killed at the push (before its script reaches Redis, or after the script ran and
  before its reply and the inbox copies) loses nothing and repeats nothing: restarted under the
  same instance id, it handles its own pending entry first, and the tab gets the alarm once,
  within 5 s of the restart; under a new id, within 15 s of the kill (the dead member's entries
  are taken over after 10 s of silence).
- A 20 s Redis outage while chat could not read presence: no ``message`` alarm reaches a member
  who was in the room on another chat instance (chat's read mark for it follows the message on
  the stream), and every alarm reaches the absent member.

One Redis only: behind a proxy, a cluster client would follow MOVED to the real nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from duochat_common.events import EventBus
from duochat_common.events.schemas import (
    CHAT_STREAM,
    ChatMessageSent,
    ChatRoomRead,
    Recipient,
    UserRef,
)
from duochat_common.redis_store import create_redis
from duochat_common.testing import REDIS_URL, TestSigner, unique_prefix
from duochat_notify.config import Settings
from duochat_notify.delivery import Delivery

from .conftest import Instance, SseStream, open_stream, start_instance, wait_ready
from .proxy import Proxy, proxy_to

pytestmark = pytest.mark.timeout(180)


def env_for(
    database_url: str, signer: TestSigner, prefix: str, redis_url: str, **extra: str
) -> dict[str, str]:
    return {
        "DUOCHAT_ENVIRONMENT": "test",
        "DUOCHAT_DATABASE_URL": database_url,
        "DUOCHAT_REDIS_URL": redis_url,
        "DUOCHAT_REDIS_PREFIX": prefix,
        "DUOCHAT_AUTH_JWKS_JSON": json.dumps(signer.jwks()),
        "DUOCHAT_KEEPALIVE_SECONDS": "1",
        "DUOCHAT_CONSUMER_BLOCK_MS": "1000",
        "DUOCHAT_LOG_LEVEL": "WARNING",
        **extra,
    }


def message(user_ids: list[int], message_id: int, room: str) -> ChatMessageSent:
    """A TALK from user 1, sent while chat could not read presence."""
    return ChatMessageSent(
        message_id=message_id,
        room_id=room,
        type="TALK",
        sender=UserRef(id=1, username="sender"),
        preview=f"message {message_id}",
        created_at=datetime.now(UTC),
        recipients=[
            Recipient(id=uid, username=f"user{uid}", in_room=False, presence_known=False)
            for uid in user_ids
        ],
    )


@contextlib.asynccontextmanager
async def namespace(prefix: str) -> AsyncIterator[tuple[Any, EventBus, Settings]]:
    redis = create_redis(REDIS_URL)
    settings = Settings(redis_prefix=prefix)
    try:
        yield redis, EventBus(redis), settings
    finally:
        keys = [k async for k in redis.scan_iter(match=settings.key("*"), count=1000)]
        for start in range(0, len(keys), 500):
            await redis.delete(*keys[start : start + 500])
        await redis.aclose()


@contextlib.asynccontextmanager
async def processes(*instances: Instance) -> AsyncIterator[None]:
    try:
        for instance in instances:
            await asyncio.to_thread(wait_ready, instance)
        yield
    finally:
        for instance in instances:
            instance.stop()


def redis_proxy() -> contextlib.AbstractAsyncContextManager[Proxy]:
    where = urlsplit(REDIS_URL)
    return proxy_to(where.hostname or "127.0.0.1", where.port or 6379)


async def events_of(stream: SseStream, kind: str, seconds: float) -> list[Any]:
    """Every event of ``kind`` the stream gets within ``seconds``."""
    got = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        with contextlib.suppress(TimeoutError):
            event = await stream.next(timeout=left)
            if event.event == kind:
                got.append(event)
    return got


@pytest.mark.parametrize(
    ("script_ran", "same_name"),
    [(False, True), (True, True), (True, False)],
    ids=["before-script", "after-script", "after-script-new-name"],
)
async def test_a_consumer_killed_at_the_push_delivers_once_within_5s_of_its_restart(
    database_url: str, signer: TestSigner, tmp_path: Path, script_ran: bool, same_name: bool
) -> None:
    """Under a new name (a replaced task), the restarted instance has no pending list of its
    own: it takes the dead member's entries over once that member has been silent for the
    consumer's ``dead_after_ms`` (10 s), not after ``claim_idle_ms`` (30 s)."""
    prefix = unique_prefix()
    user = 700_000 + int(time.time() * 1000) % 100_000
    token = signer.token(user, f"user{user}")
    async with redis_proxy() as proxy, namespace(prefix) as (redis, bus, settings):
        server = start_instance(
            "fault-s",
            env_for(database_url, signer, prefix, REDIS_URL, DUOCHAT_CONSUME_EVENTS="false"),
            tmp_path,
        )
        consumer = start_instance(
            "fault-f", env_for(database_url, signer, prefix, proxy.url), tmp_path
        )
        async with processes(server, consumer), open_stream(server.url, token) as tab:
            # The consumer reads the event, stores the alarm, and is killed at its push.
            proxy.hold_on(b"EVAL", after_forwarding=script_ran)
            await bus.publish(settings.key(CHAT_STREAM), message([user], 1, "room-k").envelope())
            await asyncio.wait_for(proxy.held.wait(), 30)
            consumer.stop(signal.SIGKILL)
            killed = time.monotonic()
            delivery = Delivery(redis, settings)
            on_stream = await redis.xrange(delivery.stream_key(user))
            assert len(on_stream) == (1 if script_ran else 0)  # marked and appended, or neither
            assert await events_of(tab, "message", 0.5) == []

            # Back under the same instance id (and consumer name), or a new one, straight to
            # Redis.
            started = time.monotonic()
            again = start_instance(
                "fault-f" if same_name else "fault-f2",
                env_for(database_url, signer, prefix, REDIS_URL),
                tmp_path,
            )
            async with processes(again):
                ready = time.monotonic()
                first = await tab.next(timeout=30)
                arrived = time.monotonic()
                assert first.event == "message"
                assert first.data["preview"] == "message 1"
                late = (
                    f"{arrived - ready:.1f} s after ready, {arrived - started:.1f} s after start,"
                    f" {arrived - killed:.1f} s after the kill"
                )
                if same_name:
                    assert arrived - ready < 5, late
                else:
                    assert arrived - killed < 10 + 5, late
                assert await events_of(tab, "message", 1.5) == []  # once
            assert len(await redis.xrange(delivery.stream_key(user))) == 1


async def test_a_20s_outage_with_presence_unknown_alarms_only_the_absent_member(
    database_url: str, signer: TestSigner, tmp_path: Path
) -> None:
    prefix = unique_prefix()
    base = 800_000 + int(time.time() * 1000) % 100_000
    elsewhere, away = base, base + 1
    async with redis_proxy() as proxy, namespace(prefix) as (_, bus, settings):
        extra = {"DUOCHAT_PRESENCE_HOLD_SECONDS": "3"}
        server = start_instance(
            "outage-s",
            env_for(
                database_url, signer, prefix, proxy.url, DUOCHAT_CONSUME_EVENTS="false", **extra
            ),
            tmp_path,
        )
        consumer = start_instance(
            "outage-f", env_for(database_url, signer, prefix, proxy.url, **extra), tmp_path
        )
        async with (
            processes(server, consumer),
            open_stream(server.url, signer.token(elsewhere, "elsewhere")) as in_room_tab,
            open_stream(server.url, signer.token(away, "away")) as away_tab,
        ):
            proxy.cut()
            # Meanwhile chat (on its own path to Redis, here the test) sends five messages whose
            # recipients' presence it could not read; the member who is in the room on another
            # chat instance reads them there, and chat publishes that read mark.
            stream = settings.key(CHAT_STREAM)
            for n in range(1, 6):
                await bus.publish(stream, message([elsewhere, away], n, "room-o").envelope())
            read = ChatRoomRead(
                room_id="room-o", user=UserRef(id=elsewhere, username="e"), last_read_id=5
            )
            await bus.publish(stream, read.envelope())
            await asyncio.sleep(20)
            proxy.restore()

            got = await events_of(away_tab, "message", 25)
            assert sorted(e.data["preview"] for e in got) == [f"message {n}" for n in range(1, 6)]
            assert await events_of(in_room_tab, "message", 1) == []
            async with httpx.AsyncClient(base_url=server.url) as http:
                page = (
                    await http.get(
                        "/notify/alarms",
                        headers={"Authorization": f"Bearer {signer.token(elsewhere, 'e')}"},
                    )
                ).json()
            assert page["unreadCount"] == 0
