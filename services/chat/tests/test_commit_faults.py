"""A chat instance stopped at the moment its COMMIT ran on the database but its answer had not
arrived (a loopback proxy between chat and MariaDB holds the answer). SIGKILL then, or SIGTERM
(a rolling deploy), loses no message and no notification, and stores nothing twice."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy import create_engine, text

from duochat_chat.ring import rendezvous
from duochat_common.events.bus import stream_events
from duochat_common.testing import REDIS_URL, unique_prefix
from duochat_testing.chat import ChatProcess, HoldProxy, StompClient, chat_env, new_room

HOLD = b"INSERT INTO chat_messages"


@dataclass
class Pair:
    proxy: HoldProxy
    held: ChatProcess  # its database connections go through the proxy
    other: ChatProcess
    prefix: str


@pytest.fixture
async def pair(chat, tmp_path) -> AsyncIterator[Pair]:
    proxy = HoldProxy()
    await proxy.start()
    prefix = unique_prefix()
    common = {
        "outbox_stale_s": "1",
        "outbox_sweep_s": "0.5",
        "forward_resend_s": "1",
        "sends_per_second": "50",
    }
    through = chat.database_url.replace(":3306/", f":{proxy.port}/")
    held = ChatProcess(
        {
            **chat_env(
                database_url=through, redis_url=REDIS_URL, prefix=prefix, stub=chat.stub, **common
            ),
            "DUOCHAT_INSTANCE_ID": "held",
        },
        log_path=tmp_path / "held.log",
    )
    other = ChatProcess(
        {
            **chat_env(
                database_url=chat.database_url,
                redis_url=REDIS_URL,
                prefix=prefix,
                stub=chat.stub,
                **common,
            ),
            "DUOCHAT_INSTANCE_ID": "other",
        },
        log_path=tmp_path / "other.log",
    )
    held.start()
    other.start()
    try:
        await asyncio.gather(held.wait_ready(), other.wait_ready())
        await asyncio.sleep(1.0)  # both see each other in the live set
        yield Pair(proxy, held, other, prefix)
    finally:
        await proxy.close()
        held.kill()
        other.stop()


def rows_of(database_url: str, room_id: str) -> list[tuple[int, str]]:
    engine = create_engine(database_url.replace("mysql://", "mysql+pymysql://"))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT id, message FROM chat_messages WHERE room_id = :r ORDER BY id"),
                {"r": room_id},
            ).all()
            return [(r.id, r.message) for r in rows]
    finally:
        engine.dispose()


async def stored(chat, room_id: str) -> list[tuple[int, str]]:
    return await asyncio.to_thread(rows_of, chat.database_url, room_id)


async def room_owned_by_held(chat) -> tuple[str, str, str]:
    alice, ta = chat.user()
    bob, tb = chat.user()
    room = new_room(alice, bob)
    while rendezvous(("held", "other"), room.room_id) != "held":
        room = new_room(alice, bob)
    chat.stub.rooms[room.room_id] = room
    return room.room_id, ta, tb


async def events_for(chat, prefix: str, room_id: str, message_id: int, within: float) -> set[str]:
    """The ids of the chat.message.sent events for one message, once there is one."""
    found: set[str] = set()
    async with asyncio.timeout(within):
        while not found:
            for event in await stream_events(chat.redis, f"{prefix}events.chat"):
                data = event.data
                if (
                    event.type == "chat.message.sent"
                    and data["roomId"] == room_id
                    and data["messageId"] == message_id
                ):
                    found.add(event.id)
            if not found:
                await asyncio.sleep(0.2)
    await asyncio.sleep(2.0)  # a late duplicate of a different event would show up now
    for event in await stream_events(chat.redis, f"{prefix}events.chat"):
        if event.data.get("roomId") == room_id and event.data["messageId"] == message_id:
            found.add(event.id)
    return found


async def talk_through(pair: Pair, chat) -> tuple[str, str, StompClient, StompClient]:
    room, ta, tb = await room_owned_by_held(chat)
    a = await StompClient.open(pair.held.ws, ta)
    b = await StompClient.open(pair.other.ws, tb)
    await a.subscribe(room)
    await b.subscribe(room)
    async with asyncio.timeout(10):
        while len(await stored(chat, room)) < 2:  # both first visits are written
            await asyncio.sleep(0.05)
    return room, ta, a, b


async def next_talk(client: StompClient, within: float = 20.0) -> dict:
    async with asyncio.timeout(within):
        while True:
            msg = await client.next_message(within)
            if msg.get("type") == "TALK":
                return msg


async def test_sigkill_right_after_a_commit(pair: Pair, chat) -> None:
    room, ta, a, b = await talk_through(pair, chat)
    pair.proxy.arm(HOLD)
    fut = await a.send(room, "kept", clientMessageId="kill-1")
    assert fut is not None
    async with asyncio.timeout(10):
        await pair.proxy.holding.wait()
        while not any(m == "kept" for _, m in await stored(chat, room)):
            await asyncio.sleep(0.05)  # the COMMIT ran; its answer is held
    pair.held.kill()
    pair.proxy.release()
    with pytest.raises(Exception):
        await fut  # no receipt came: the client must send it again
    again = await StompClient.open(pair.other.ws, ta)
    resend = await again.send(room, "kept", clientMessageId="kill-1")
    assert resend is not None
    async with asyncio.timeout(20):
        await resend
    rows = await stored(chat, room)
    assert [m for _, m in rows].count("kept") == 1
    message_id = next(i for i, m in rows if m == "kept")
    got = await next_talk(b)
    assert (got["id"], got["message"]) == (message_id, "kept")
    assert len(await events_for(chat, pair.prefix, room, message_id, within=20)) == 1
    for client in (a, b, again):
        await client.close()


async def test_sigterm_during_a_commit(pair: Pair, chat) -> None:
    room, _, a, b = await talk_through(pair, chat)
    pair.proxy.arm(HOLD)
    fut = await a.send(room, "drained", clientMessageId="term-1")
    assert fut is not None
    async with asyncio.timeout(10):
        await pair.proxy.holding.wait()
    assert pair.held.proc is not None
    pair.held.proc.send_signal(signal.SIGTERM)
    await asyncio.sleep(1.0)
    pair.proxy.release()
    async with asyncio.timeout(10):
        receipt = await fut  # the drain lets the commit finish and its receipt go out
    assert receipt.command == "RECEIPT"
    async with asyncio.timeout(15):
        await a.closed.wait()  # then the instance closes its sockets
    assert pair.held.proc.wait(10) is not None
    rows = await stored(chat, room)
    assert [m for _, m in rows].count("drained") == 1
    message_id = next(i for i, m in rows if m == "drained")
    got = await next_talk(b)
    assert (got["id"], got["message"]) == (message_id, "drained")
    assert len(await events_for(chat, pair.prefix, room, message_id, within=20)) == 1
    for client in (a, b):
        await client.close()
