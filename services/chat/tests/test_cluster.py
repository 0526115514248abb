"""Chat on a Redis Cluster (``DUOCHAT_REDIS_CLUSTER=true``): two instances converse across
the cluster's nodes, and a master killed mid-conversation and restarted loses no receipted
message; both members end with the database's history."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest

from duochat_common.testing import redis_cluster_url, unique_prefix
from duochat_testing.chat import ChatProcess, chat_env, converse, finish, publish_rooms, talking

CLUSTER_DIR = os.path.join(os.environ.get("TMPDIR", "/tmp"), "duochat-redis-cluster")


@dataclass
class ClusterChat:
    """What ``converse`` and ``finish`` expect of the shared fixture, on the cluster."""

    base: object
    procs: list[ChatProcess]
    clients: list = field(default_factory=list)

    def __getattr__(self, name: str):
        return getattr(self.base, name)

    async def room(self, writer, applicant, **kw) -> str:
        room_id = await self.base.room(writer, applicant, announce=False, **kw)
        return room_id


@pytest.fixture
async def on_cluster(chat, tmp_path) -> AsyncIterator[ClusterChat]:
    url = redis_cluster_url()
    if url is None:
        pytest.fail("no Redis Cluster on 7001-7003: `make test` starts one (.ci/redis-cluster)")
    env = chat_env(
        database_url=chat.database_url,
        redis_url=url,
        prefix=unique_prefix(),
        stub=chat.stub,
        redis_cluster="true",
        sends_per_second="50",
        send_burst="100",
    )
    procs = [
        ChatProcess({**env, "DUOCHAT_INSTANCE_ID": f"cl{i}"}, log_path=tmp_path / f"cl{i}.log")
        for i in range(2)
    ]
    for proc in procs:
        proc.start()
    try:
        await asyncio.gather(*(p.wait_ready() for p in procs))
        await asyncio.sleep(1.0)
        yield ClusterChat(chat, procs)
    finally:
        for proc in procs:
            proc.stop()


def node_ports(url: str) -> list[int]:
    first = urlsplit(url).port or 7001
    out = subprocess.run(
        ["redis-cli", "-p", str(first), "cluster", "nodes"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    return sorted(int(line.split()[1].split(":")[1].split("@")[0]) for line in out.splitlines())


def restart_node(port: int) -> None:
    """The node comes back with the same id and slots (its nodes.conf), and no data."""
    where = os.path.join(CLUSTER_DIR, str(port))
    subprocess.run(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            os.path.join(where, "nodes.conf"),
            "--dir",
            where,
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "yes",
            "--logfile",
            os.path.join(where, "redis.log"),
        ],
        check=True,
        timeout=10,
    )


async def cluster_ok(port: int, within: float = 30.0) -> None:
    async with asyncio.timeout(within):
        while True:
            out = subprocess.run(
                ["redis-cli", "-p", str(port), "cluster", "info"],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            ).stdout
            if "cluster_state:ok" in out:
                return
            await asyncio.sleep(0.2)


async def test_conversation_on_a_redis_cluster(on_cluster: ClusterChat) -> None:
    rooms, members = await converse(on_cluster, pairs=3)
    async with talking(members, "cl") as stop:
        await asyncio.sleep(2.0)
        await stop()
    assert all(len(m.acked) > 5 for m in members)
    await finish(on_cluster, rooms, members)


async def test_a_cluster_master_killed_mid_conversation(on_cluster: ClusterChat) -> None:
    url = redis_cluster_url()
    assert url is not None
    ports = node_ports(url)
    victim = ports[1]  # not the node the URL names
    rooms, members = await converse(on_cluster, pairs=3)
    try:
        async with talking(members, "mk") as stop:
            await asyncio.sleep(1.0)
            subprocess.run(
                ["redis-cli", "-p", str(victim), "shutdown", "nosave"],
                capture_output=True,
                timeout=10,
                check=False,
            )
            await asyncio.sleep(2.0)
            restart_node(victim)
            await cluster_ok(ports[0])
            await asyncio.sleep(3.0)
            await stop()
    finally:
        await cluster_ok(ports[0])
    assert all(len(m.acked) > 5 for m in members)
    await finish(on_cluster, rooms, members)


async def test_rooms_announced_on_the_cluster_stream(on_cluster: ClusterChat) -> None:
    """boards' events reach chat through the cluster too (the projection, not the HTTP
    lookup)."""
    alice, _ = on_cluster.user()
    bob, _ = on_cluster.user()
    from duochat_testing.chat import new_room

    room = new_room(alice, bob)
    import redis.asyncio.cluster as rc

    url = redis_cluster_url()
    assert url is not None
    client = rc.RedisCluster.from_url(url, decode_responses=True)
    try:
        prefix = on_cluster.procs[0].env["DUOCHAT_REDIS_PREFIX"]
        await publish_rooms(client, prefix, [room])
    finally:
        await client.aclose()
    from sqlalchemy import create_engine, text

    engine = create_engine(on_cluster.database_url.replace("mysql://", "mysql+pymysql://"))
    try:
        async with asyncio.timeout(15):
            while True:
                with engine.connect() as conn:
                    found = conn.execute(
                        text("SELECT COUNT(*) FROM chat_rooms WHERE room_id = :r"),
                        {"r": room.room_id},
                    ).scalar_one()
                if found:
                    break
                await asyncio.sleep(0.2)
    finally:
        engine.dispose()
