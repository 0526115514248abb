"""The per-instance fan-out, on the in-process Redis: ids, joining late, slow clients."""

from __future__ import annotations

import uuid

import pytest

from duochat_common.redis_store import create_redis
from duochat_notify.hub import Hub, Subscription, parse_id


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


@pytest.fixture
async def hub():
    redis = create_redis(f"memory://hub-{uuid.uuid4().hex[:8]}")
    yield Hub(redis, key_of=lambda uid: f"user:{uid}", wake_key="wake", block_ms=50, max_queued=5)
    await redis.aclose()


async def drain(sub: Subscription) -> list[str]:
    out = []
    while not sub._queue.empty():
        entry = await sub.next()
        out.append("closed" if entry is None else entry.data)
    return out


async def test_a_tab_that_joins_behind_the_reader_gets_the_gap_in_order(hub):
    for n in range(3):
        await hub.redis.xadd("user:1", {"event": "message", "data": f"d{n}"})
    first = await hub.subscribe(1, "0-0")
    await hub.read_once()
    await hub.read_once()
    assert await drain(first) == ["d0", "d1", "d2"]
    # The reader is at d2; a tab resuming after d0 gets d1 and d2 from the stream itself.
    d0 = (await hub.redis.xrange("user:1", count=1))[0][0]
    late = await hub.subscribe(1, d0)
    await hub.redis.xadd("user:1", {"event": "message", "data": "d3"})
    await hub.read_once()
    await hub.read_once()
    assert await drain(late) == ["d1", "d2", "d3"]
    assert await drain(first) == ["d3"]


async def test_a_new_tab_starts_after_the_newest_entry(hub):
    await hub.redis.xadd("user:2", {"event": "message", "data": "old"})
    sub = await hub.subscribe(2, None)
    await hub.redis.xadd("user:2", {"event": "message", "data": "new"})
    await hub.read_once()
    await hub.read_once()
    assert await drain(sub) == ["new"]


async def test_a_client_too_far_behind_is_closed(hub):
    sub = await hub.subscribe(3, None)
    for n in range(8):
        await hub.redis.xadd("user:3", {"event": "message", "data": f"d{n}"})
    await hub.read_once()
    await hub.read_once()
    assert sub.closed
    assert await drain(sub) == ["d0", "d1", "d2", "d3", "d4", "closed"]


async def test_the_last_tab_leaving_forgets_the_user(hub):
    a = await hub.subscribe(4, None)
    b = await hub.subscribe(4, None)
    assert hub.connected == 2
    hub.unsubscribe(a)
    assert hub.connected == 1
    hub.unsubscribe(b)
    assert hub.connected == 0
    assert 4 not in hub._cursors


async def test_close_all_ends_every_tab(hub):
    subs = [await hub.subscribe(uid, None) for uid in (5, 5, 6)]
    hub.close_all()
    for sub in subs:
        assert await sub.next() is None


async def test_a_last_event_id_from_the_future_counts_as_now(hub):
    await hub.redis.xadd("user:7", {"event": "message", "data": "old"})
    forged = await hub.subscribe(7, "99999999999999-0")
    other = await hub.subscribe(7, None)
    await hub.redis.xadd("user:7", {"event": "message", "data": "new"})
    await hub.read_once()
    await hub.read_once()
    assert await drain(forged) == ["new"]
    assert await drain(other) == ["new"]
