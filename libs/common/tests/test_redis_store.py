"""Redis clients by URL and settings: one server, a Redis Cluster, the in-process store."""

from __future__ import annotations

import uuid

import pytest

from duochat_common.redis_store import create_redis, hash_tag, is_cluster, ping
from duochat_common.testing import REDIS_URL, redis_cluster_url


async def test_one_server_and_the_in_process_store_are_plain_clients() -> None:
    for url in (REDIS_URL, f"memory://store-{uuid.uuid4().hex}"):
        client = create_redis(url)
        try:
            assert not is_cluster(client)
            await ping(client)
        finally:
            await client.aclose()


async def test_cluster_mode_reaches_every_node_through_any_one() -> None:
    url = redis_cluster_url()
    if url is None:
        pytest.skip("no Redis Cluster (start one with .ci/redis-cluster start)")
    client = create_redis(url, cluster=True)
    prefix = f"t{uuid.uuid4().hex[:10]}:"
    keys = [f"{prefix}k{n}" for n in range(20)]
    try:
        assert is_cluster(client)
        await ping(client)  # CLUSTER INFO says every slot is served
        slots = {int(await client.execute_command("CLUSTER KEYSLOT", k)) for k in keys}
        assert len(slots) > 1
        for key in keys:
            await client.set(key, "1", ex=60)
        assert await client.delete(*keys) == len(keys)  # split by slot
    finally:
        await client.aclose()


async def test_a_cluster_that_does_not_answer_is_not_ready() -> None:
    client = create_redis("redis://127.0.0.1:1/0", cluster=True)
    try:
        with pytest.raises(Exception):  # any connection failure will do
            await ping(client)
    finally:
        await client.aclose()


def test_keys_on_one_hash_tag_share_a_slot_whatever_the_name_holds() -> None:
    assert hash_tag("room:42") == "{room:42}"
    assert hash_tag("a{b}c") == "{a(b)c}"  # braces inside cannot end the tag early
