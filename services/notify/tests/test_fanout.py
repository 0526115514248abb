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
from duochat_notify.fanout import Fanout, Tab, parse_id
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
    """One instance's fan-out and slots, and a pusher, on a shared store."""

    fanout: Fanout
    slots: StreamSlots
    delivery: Delivery

    @property
    def redis(self) -> Any:
        return self.delivery.redis

    async def subscribe(self, user_id: int, last_event_id: str | None) -> Tab:
        await self.slots.acquire(user_id)  # as Streams.open does, before the fan-out
        return await self.fanout.subscribe(user_id, last_event_id)

    async def push(self, user_id: int, data: str) -> str:
        await self.delivery._push([(user_id, "message", data, None)])
        return str((await self.redis.xrevrange(self.delivery.stream_key(user_id), count=1))[0][0])


@contextlib.asynccontextmanager
async def node_on(shape: str, name: str = "i1") -> AsyncIterator[Node]:
    settings = Settings(redis_prefix=unique_prefix())
    if shape == "memory":
        redis = create_redis(f"memory://fanout-{uuid.uuid4().hex[:8]}")
    else:
        found = redis_shape_url(shape)
        if found is None:
            pytest.skip("no Redis Cluster (start one with .ci/redis-cluster start)")
        redis = create_redis(found[0], cluster=found[1])
    delivery = Delivery(redis, settings)
    fanout = Fanout(
        redis,
        inbox_key=delivery.keys.inbox(name),
        key_of=delivery.stream_key,
        block_ms=50,
        max_queued=5,
    )
    try:
        yield Node(fanout, StreamSlots(redis, settings, instance=name), delivery)
    finally:
        keys = [k async for k in redis.scan_iter(match=settings.key("*"), count=1000)]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


@pytest.fixture(params=["memory", "redis", "cluster"])
async def fanout(request: pytest.FixtureRequest) -> AsyncIterator[Node]:
    """An instance's fan-out on the in-process store, one Redis, and a Redis Cluster."""
    async with node_on(request.param) as node:
        yield node


async def drain(sub: Tab) -> list[str]:
    out = []
    while not sub._queue.empty():
        entry = await sub.next()
        out.append("closed" if entry is None else entry.data)
    return out


async def read(node: Node) -> None:
    """What the fan-out's loop does: a read that takes whatever the inbox holds."""
    await node.fanout.read_once()
    await node.fanout.read_once()


async def test_a_tab_that_joins_behind_the_reader_gets_the_gap_in_order(fanout):
    first = await fanout.subscribe(1, None)
    ids = [await fanout.push(1, f"d{n}") for n in range(3)]
    await read(fanout)
    assert await drain(first) == ["d0", "d1", "d2"]
    # The reader is at d2; a tab resuming after d0 gets d1 and d2 from the stream itself.
    late = await fanout.subscribe(1, ids[0])
    await fanout.push(1, "d3")
    await read(fanout)
    assert await drain(late) == ["d1", "d2", "d3"]
    assert await drain(first) == ["d3"]


async def test_a_tab_replays_what_was_pushed_while_no_tab_was_open(fanout):
    ids = [await fanout.push(2, f"d{n}") for n in range(3)]
    sub = await fanout.subscribe(2, ids[0])
    await read(fanout)
    assert await drain(sub) == ["d1", "d2"]


async def test_a_new_tab_starts_after_the_newest_entry(fanout):
    await fanout.push(2, "old")
    sub = await fanout.subscribe(2, None)
    await fanout.push(2, "new")
    await read(fanout)
    assert await drain(sub) == ["new"]


async def test_what_the_inbox_brings_during_the_replay_comes_after_it_once(fanout):
    ids = [await fanout.push(8, f"d{n}") for n in range(2)]
    sub = Tab(8, parse_id(ids[0]) or (0, 0), max_queued=10)
    # The inbox delivers d2 (and a copy of d1) while the tab is still replaying.
    d2 = await fanout.push(8, "d2")
    sub.offer(d2, parse_id(d2) or (0, 0), {"event": "message", "data": "d2"})
    sub.offer(ids[1], parse_id(ids[1]) or (0, 0), {"event": "message", "data": "d1"})
    sub.go_live([(ids[1], {"event": "message", "data": "d1"})])
    assert await drain(sub) == ["d1", "d2"]


async def test_a_client_too_far_behind_is_closed(fanout):
    sub = await fanout.subscribe(3, None)
    for n in range(8):
        await fanout.push(3, f"d{n}")
    await read(fanout)
    assert sub.closed
    assert await drain(sub) == ["d0", "d1", "d2", "d3", "d4", "closed"]


async def test_the_last_tab_leaving_forgets_the_user(fanout):
    a = await fanout.subscribe(4, None)
    b = await fanout.subscribe(4, None)
    assert fanout.fanout.connected == 2
    fanout.fanout.unsubscribe(a)
    assert fanout.fanout.connected == 1
    fanout.fanout.unsubscribe(b)
    assert fanout.fanout.connected == 0
    assert 4 not in fanout.fanout._subs


async def test_close_all_ends_every_tab(fanout):
    subs = [await fanout.subscribe(uid, None) for uid in (5, 5, 6)]
    fanout.fanout.close_all()
    for sub in subs:
        assert await sub.next() is None


async def test_a_last_event_id_from_the_future_counts_as_now(fanout):
    await fanout.push(7, "old")
    forged = await fanout.subscribe(7, "99999999999999-0")
    other = await fanout.subscribe(7, None)
    await fanout.push(7, "new")
    await read(fanout)
    assert await drain(forged) == ["new"]
    assert await drain(other) == ["new"]


async def test_entries_go_only_to_the_inboxes_of_instances_holding_the_user(fanout):
    async with node_on("memory", "i2") as other:
        # Same store and namespace as ``fanout``: a second instance of one deployment.
        other.delivery = fanout.delivery
        other.fanout.redis = other.slots.redis = fanout.redis
        other.fanout.inbox_key = fanout.delivery.keys.inbox("i2")
        other.slots = StreamSlots(fanout.redis, fanout.delivery.settings, instance="i2")
        here = await fanout.subscribe(10, None)
        there = await other.subscribe(11, None)
        await fanout.push(10, "to ten")
        await fanout.push(11, "to eleven")
        assert await fanout.redis.xlen(fanout.delivery.keys.inbox("i1")) == 1
        assert await fanout.redis.xlen(fanout.delivery.keys.inbox("i2")) == 1
        await read(fanout)
        await read(other)
        assert await drain(here) == ["to ten"]
        assert await drain(there) == ["to eleven"]


async def test_a_read_is_one_command_whatever_the_number_of_users(fanout):
    subs = [await fanout.subscribe(uid, None) for uid in range(100, 400)]
    await fanout.push(250, "one")
    await read(fanout)
    assert await drain(subs[150]) == ["one"]
    # One XREAD names one key: the inbox, not the 300 users' streams.
    assert fanout.fanout.inbox_key == fanout.delivery.keys.inbox("i1")


async def test_copies_that_arrive_out_of_order_are_delivered_in_order_once(fanout):
    # Two pushers appended d1 then d2 to the user's stream, but d2's copy reached the inbox first.
    sub = await fanout.subscribe(12, None)
    inbox = fanout.delivery.keys.inbox("i1")
    before = await fanout.redis.xrange(inbox)
    for n in (1, 2, 3):
        await fanout.push(12, f"d{n}")
    copies = (await fanout.redis.xrange(inbox))[len(before) :]
    await fanout.redis.xtrim(inbox, maxlen=0)
    for _id, fields in (copies[1], copies[0], copies[2]):
        await fanout.redis.xadd(inbox, fields)
    await read(fanout)
    assert await drain(sub) == ["d1", "d2", "d3"]


async def test_a_lost_copy_is_read_from_the_users_stream(fanout):
    sub = await fanout.subscribe(13, None)
    inbox = fanout.delivery.keys.inbox("i1")
    for n in (1, 2):
        await fanout.push(13, f"d{n}")
    copies = await fanout.redis.xrange(inbox)
    await fanout.redis.xdel(inbox, copies[-2][0])  # the pusher of d1 died before copying it
    await read(fanout)
    assert await drain(sub) == ["d1", "d2"]
