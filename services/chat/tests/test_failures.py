"""Losing a chat process (SIGKILL), its database connections or Redis mid-conversation loses no
acknowledged message, and both members end with the same history as the database."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import httpx
from sqlalchemy import create_engine, text

from duochat_testing.chat import ChatProcess, converse, finish, talking

REDIS_START = [
    "redis-server",
    "--daemonize",
    "yes",
    "--bind",
    "127.0.0.1",
    "-::1",
    "--port",
    "6379",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    "/var/lib/redis",
    "--logfile",
    "/var/log/redis/ci.log",
]


async def test_sigkill_one_instance_mid_conversation(chat) -> None:
    rooms, members = await converse(chat, pairs=4)
    try:
        async with talking(members, "m") as stop:
            await asyncio.sleep(1.5)
            chat.procs[1].kill()
            await asyncio.sleep(2.5)
            await stop()
        moved = [m for i, m in enumerate(members) if i % 2 == 1]
        assert all(m.reconnects >= 1 for m in moved), "clients of the killed process reconnect"
        assert all(len(m.acked) > 5 for m in members)
        await finish(chat, rooms, members)
    finally:
        dead = chat.procs[1]
        chat.procs[1] = ChatProcess(dead.env, port=dead.port, log_path=dead.log_path)
        chat.procs[1].start()
        await chat.procs[1].wait_ready()


def kill_database_connections(database_url: str) -> int:
    """What a failover or a restarted database does to the chat processes: every connection
    they hold to their database is cut (``KILL``), mid-transaction or idle."""
    engine = create_engine(database_url.replace("mysql://", "mysql+pymysql://"))
    try:
        with engine.connect() as conn:
            name = conn.execute(text("SELECT DATABASE()")).scalar_one()
            mine = conn.execute(text("SELECT CONNECTION_ID()")).scalar_one()
            ids = conn.execute(
                text("SELECT id FROM information_schema.processlist WHERE db = :db AND id <> :me"),
                {"db": name, "me": mine},
            ).scalars()
            killed = 0
            for connection_id in list(ids):
                try:
                    conn.execute(text(f"KILL {int(connection_id)}"))
                    killed += 1
                except Exception:
                    pass
            return killed
    finally:
        engine.dispose()


async def test_database_connections_cut_mid_conversation(chat) -> None:
    rooms, members = await converse(chat, pairs=3)
    async with talking(members, "k") as stop:
        await asyncio.sleep(1.0)
        killed = 0
        for _ in range(3):  # while messages are being written
            killed += await asyncio.to_thread(kill_database_connections, chat.database_url)
            await asyncio.sleep(0.5)
        assert killed >= 2, "both chat processes held database connections"
        await asyncio.sleep(1.5)
        await stop()
    assert all(len(m.acked) > 5 for m in members), "sending goes on after the cut"
    await finish(chat, rooms, members)


def redis_up() -> bool:
    try:
        out = subprocess.run(
            [shutil.which("redis-cli") or "redis-cli", "ping"],
            capture_output=True,
            timeout=5,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    return out.stdout.strip() == b"PONG"


def restart_redis() -> None:
    for _ in range(50):
        if redis_up():
            return
        subprocess.run(REDIS_START, capture_output=True, timeout=10, check=False)
        for _ in range(20):
            if redis_up():
                return
            subprocess.run(["sleep", "0.1"], check=False)
    raise RuntimeError("redis did not come back")


async def test_redis_restart_mid_conversation(chat) -> None:
    rooms, members = await converse(chat, pairs=2)
    async with talking(members, "r") as stop:
        try:
            await asyncio.sleep(1.0)
            subprocess.run(
                ["redis-cli", "shutdown", "nosave"],
                capture_output=True,
                timeout=10,
                check=False,
            )
            await asyncio.sleep(1.5)  # keep it short: other suites share this Redis
        finally:
            await asyncio.to_thread(restart_redis)
            await chat.redis.connection_pool.disconnect()  # its sockets died with the server
        await asyncio.sleep(2.0)
        await stop()
    async with httpx.AsyncClient() as http:
        for proc in chat.procs:
            async with asyncio.timeout(20):
                while (await http.get(f"{proc.http}/readyz")).status_code != 200:
                    await asyncio.sleep(0.2)
    await finish(chat, rooms, members)
