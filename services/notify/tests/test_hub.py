"""The per-instance fan-out through the instance's inbox: ids, joining late, slow clients,
one read per instance whatever the number of users."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from duochat_common.redis_store import create_redis
from duochat_common.testing import redis_shape_url, unique_prefix
from duochat_notify.config import Settings
from duochat_notify.delivery import Delivery
from duochat_notify.hub import Hub, Subscription, parse_id
from duochat_notify.slots import StreamSlots


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("1700000000000-0", (1700000000000, 0)),
        ("5-12", (5, 12)),
        (" 5-12 ", (5, 12)),
        ("", None),
        (None, None),
        ("5", None),
        ("a-1", None),
        ("1-b", None),
        ("-1-0", None),
        ("1" * 60 + "-0", None),
    ],
)
def test_parse_id(value, parsed):
    assert parse_id(value) == parsed


@dataclass
class Node:
    """One instance's hub and slots, and a pusher, on a shared store."""

    hub: Hub
    slots: StreamSlots
    delivery: Delivery

    @property
    def redis(self) -> Any:
        return self.delivery.redis

    async def subscribe(self, user_id: int, last_event_id: str | None) -> Subscription:
        await self.slots.acquire(user_id)  # as Streams.open does, before the hub
        return await self.hub.subscribe(user_id, last_event_id)

    async def push(self, user_id: int, data: str) -> str:
        await self.delivery._push([(user_id, "message", data, None)])
        return str((await self.redis.xrevrange(self.delivery.stream_key(user_id), count=1))[0][0])


@contextlib.asynccontextmanager
async def node_on(shape: str, name: str = "i1") -> AsyncIterator[Node]:
    settings = Settings(redis_prefix=unique_prefix())
    if shape == "memory":
        redis = create_redis(f"memory://hub-{uuid.uuid4().hex[:8]}")
    else:
        found = redis_shape_url(shape)
        if found is None:
            pytest.skip("no Redis Cluster (start one with .ci/redis-cluster start)")
        redis = create_redis(found[0], cluster=found[1])
    delivery = Delivery(redis, settings)
    hub = Hub(
        redis,
        inbox_key=delivery.keys.inbox(name),
        key_of=delivery.stream_key,
        block_ms=50,
        max_queued=5,
    )
    try:
        yield Node(hub, StreamSlots(redis, settings, instance=name), delivery)
    finally:
        keys = [k async for k in redis.scan_iter(match=settings.key("*"), count=1000)]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


@pytest.fixture(params=["memory", "redis", "cluster"])
async def hub(request: pytest.FixtureRequest) -> AsyncIterator[Node]:
    """An instance's hub on the in-process store, one Redis, and a Redis Cluster."""
    async with node_on(request.param) as node:
        yield node


async def drain(sub: Subscription) -> list[str]:
    out = []
    while not sub._queue.empty():
        entry = await sub.next()
        out.append("closed" if entry is None else entry.data)
    return out


async def read(node: Node) -> None:
    """What the hub's loop does: a read that takes whatever the inbox holds."""
    await node.hub.read_once()
    await node.hub.read_once()


async def test_a_tab_that_joins_behind_the_reader_gets_the_gap_in_order(hub):
    first = await hub.subscribe(1, None)
    ids = [await hub.push(1, f"d{n}") for n in range(3)]
    await read(hub)
    assert await drain(first) == ["d0", "d1", "d2"]
    # The reader is at d2; a tab resuming after d0 gets d1 and d2 from the stream itself.
    late = await hub.subscribe(1, ids[0])
    await hub.push(1, "d3")
    await read(hub)
    assert await drain(late) == ["d1", "d2", "d3"]
    assert await drain(first) == ["d3"]


async def test_a_tab_replays_what_was_pushed_while_no_tab_was_open(hub):
    ids = [await hub.push(2, f"d{n}") for n in range(3)]
    sub = await hub.subscribe(2, ids[0])
    await read(hub)
    assert await drain(sub) == ["d1", "d2"]


async def test_a_new_tab_starts_after_the_newest_entry(hub):
    await hub.push(2, "old")
    sub = await hub.subscribe(2, None)
    await hub.push(2, "new")
    await read(hub)
    assert await drain(sub) == ["new"]


async def test_what_the_inbox_brings_during_the_replay_comes_after_it_once(hub):
    ids = [await hub.push(8, f"d{n}") for n in range(2)]
    sub = Subscription(8, parse_id(ids[0]) or (0, 0), max_queued=10)
    # The inbox delivers d2 (and a copy of d1) while the tab is still replaying.
    d2 = await hub.push(8, "d2")
    sub.offer(d2, parse_id(d2) or (0, 0), {"event": "message", "data": "d2"})
    sub.offer(ids[1], parse_id(ids[1]) or (0, 0), {"event": "message", "data": "d1"})
    sub.go_live([(ids[1], {"event": "message", "data": "d1"})])
    assert await drain(sub) == ["d1", "d2"]


async def test_a_client_too_far_behind_is_closed(hub):
    sub = await hub.subscribe(3, None)
    for n in range(8):
        await hub.push(3, f"d{n}")
    await read(hub)
    assert sub.closed
    assert await drain(sub) == ["d0", "d1", "d2", "d3", "d4", "closed"]


async def test_the_last_tab_leaving_forgets_the_user(hub):
    a = await hub.subscribe(4, None)
    b = await hub.subscribe(4, None)
    assert hub.hub.connected == 2
    hub.hub.unsubscribe(a)
    assert hub.hub.connected == 1
    hub.hub.unsubscribe(b)
    assert hub.hub.connected == 0
    assert 4 not in hub.hub._subs


async def test_close_all_ends_every_tab(hub):
    subs = [await hub.subscribe(uid, None) for uid in (5, 5, 6)]
    hub.hub.close_all()
    for sub in subs:
        assert await sub.next() is None


async def test_a_last_event_id_from_the_future_counts_as_now(hub):
    await hub.push(7, "old")
    forged = await hub.subscribe(7, "99999999999999-0")
    other = await hub.subscribe(7, None)
    await hub.push(7, "new")
    await read(hub)
    assert await drain(forged) == ["new"]
    assert await drain(other) == ["new"]


async def test_entries_go_only_to_the_inboxes_of_instances_holding_the_user(hub):
    async with node_on("memory", "i2") as other:
        # Same store and namespace as ``hub``: a second instance of one deployment.
        other.delivery = hub.delivery
        other.hub.redis = other.slots.redis = hub.redis
        other.hub.inbox_key = hub.delivery.keys.inbox("i2")
        other.slots = StreamSlots(hub.redis, hub.delivery.settings, instance="i2")
        here = await hub.subscribe(10, None)
        there = await other.subscribe(11, None)
        await hub.push(10, "to ten")
        await hub.push(11, "to eleven")
        assert await hub.redis.xlen(hub.delivery.keys.inbox("i1")) == 1
        assert await hub.redis.xlen(hub.delivery.keys.inbox("i2")) == 1
        await read(hub)
        await read(other)
        assert await drain(here) == ["to ten"]
        assert await drain(there) == ["to eleven"]


async def test_a_read_is_one_command_whatever_the_number_of_users(hub):
    subs = [await hub.subscribe(uid, None) for uid in range(100, 400)]
    await hub.push(250, "one")
    await read(hub)
    assert await drain(subs[150]) == ["one"]
    # One XREAD names one key: the inbox, not the 300 users' streams.
    assert hub.hub.inbox_key == hub.delivery.keys.inbox("i1")


async def test_copies_that_arrive_out_of_order_are_delivered_in_order_once(hub):
    # Two pushers appended d1 then d2 to the user's stream, but d2's copy reached the inbox first.
    sub = await hub.subscribe(12, None)
    inbox = hub.delivery.keys.inbox("i1")
    before = await hub.redis.xrange(inbox)
    for n in (1, 2, 3):
        await hub.push(12, f"d{n}")
    copies = (await hub.redis.xrange(inbox))[len(before) :]
    await hub.redis.xtrim(inbox, maxlen=0)
    for _id, fields in (copies[1], copies[0], copies[2]):
        await hub.redis.xadd(inbox, fields)
    await read(hub)
    assert await drain(sub) == ["d1", "d2", "d3"]


async def test_a_lost_copy_is_read_from_the_users_stream(hub):
    sub = await hub.subscribe(13, None)
    inbox = hub.delivery.keys.inbox("i1")
    for n in (1, 2):
        await hub.push(13, f"d{n}")
    copies = await hub.redis.xrange(inbox)
    await hub.redis.xdel(inbox, copies[-2][0])  # the pusher of d1 died before copying it
    await read(hub)
    assert await drain(sub) == ["d1", "d2"]
