"""Presence against the real Redis: a leave that crosses the periodic refresh stays a leave."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from duochat_chat.presence import Presence
from duochat_common.redis_store import create_redis
from duochat_testing.chat import HoldProxy


@pytest.fixture
async def proxy() -> AsyncIterator[HoldProxy]:
    held = HoldProxy(6379, hold_request=True)
    await held.start()
    yield held
    await held.close()


async def test_a_leave_during_a_refresh_is_not_undone_by_it(proxy: HoldProxy) -> None:
    prefix = f"t_presence_{uuid.uuid4().hex[:8]}:"
    redis = create_redis(f"redis://127.0.0.1:{proxy.port}/0")
    presence = Presence(redis, key=lambda k: prefix + k, instance="chat0", cache_s=0)
    try:
        assert await presence.join("room", 7, "angry")
        # The refresh has read the local entries and sent its ZADD, which has not arrived...
        proxy.arm(b"ZADD")
        refresh = asyncio.create_task(presence.refresh())
        await asyncio.wait_for(proxy.holding.wait(), 5)
        # ...when the user leaves.
        leave = asyncio.create_task(presence.leave("room", 7))
        await asyncio.sleep(0.3)
        proxy.release()
        await asyncio.wait_for(refresh, 5)
        assert await asyncio.wait_for(leave, 5) is True  # gone: the QUIT goes out
        assert await presence.members("room") == {}
        assert await redis.zrange(prefix + "chat:presence:room", 0, -1) == []
    finally:
        await redis.delete(prefix + "chat:presence:room")
        await redis.aclose()
