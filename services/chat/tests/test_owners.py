"""One owner per room, across real chat processes: the owner killed, an instance joining and
draining mid-conversation, a resend on another instance, and one bad message among many."""

from __future__ import annotations

import asyncio
import json

import httpx

from duochat_common.events.bus import stream_events
from duochat_testing.chat import ChatProcess, StompError, converse, finish, talking


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def restart(chat, index: int) -> None:
    dead = chat.procs[index]
    chat.procs[index] = ChatProcess(dead.env, port=dead.port, log_path=dead.log_path)
    chat.procs[index].start()
    await chat.procs[index].wait_ready()


async def test_the_owner_killed_mid_conversation_loses_and_doubles_nothing(chat) -> None:
    # Every room is owned by chat1; one member of each sits on chat0, the other on chat1.
    rooms, members = await converse(chat, pairs=3, owner="chat1")
    try:
        async with talking(members, "own") as stop:
            await asyncio.sleep(1.5)
            chat.procs[1].kill()
            await asyncio.sleep(4.0)  # its entry expires; chat0 takes the rooms over
            await stop()
        assert all(len(m.acked) > 5 for m in members)
        await finish(chat, rooms, members)
    finally:
        await restart(chat, 1)


async def test_an_instance_joins_and_drains_mid_conversation(chat, tmp_path) -> None:
    among = ("chat0", "chat1", "chat2")
    rooms, members = await converse(chat, pairs=3, owner="chat2", among=among)
    extra = ChatProcess(
        {**chat.procs[0].env, "DUOCHAT_INSTANCE_ID": "chat2"}, log_path=tmp_path / "chat2.log"
    )
    try:
        async with talking(members, "join") as stop:
            await asyncio.sleep(1.0)
            extra.start()  # the rooms move to it: chat0 and chat1 forward every SEND there
            await extra.wait_ready()
            await asyncio.sleep(2.0)
            extra.stop()  # SIGTERM: it drains and hands the rooms back
            await asyncio.sleep(1.5)
            await stop()
        assert extra.proc is not None and extra.proc.returncode is not None
        assert all(len(m.acked) > 5 for m in members)
        await finish(chat, rooms, members)
    finally:
        extra.kill()


async def test_a_resend_on_another_instance_is_stored_once(chat) -> None:
    alice, ta = chat.user()
    bob, tb = chat.user()
    room = await chat.room(alice, bob)
    b = await chat.client(1, tb)
    await b.subscribe(room)
    first = await chat.client(0, ta)
    fut = await first.send(room, "only once", clientMessageId="c0ffee-1")
    assert fut is not None
    await fut
    await first.close()
    again = await chat.client(1, ta)  # the same client, reconnected elsewhere, resends
    for _ in range(2):
        fut = await again.send(room, "only once", clientMessageId="c0ffee-1")
        assert fut is not None
        await fut
    marker = await again.send(room, "after")
    assert marker is not None
    await marker
    seen = []
    while True:
        msg = await b.next_message()
        if msg.get("type") == "TALK":
            seen.append(msg)
            if msg["message"] == "after":
                break
    assert [m["message"] for m in seen] == ["only once", "after"]
    assert seen[0]["clientMessageId"] == "c0ffee-1"
    assert "clientMessageId" not in seen[1]  # a key the server made is never shown
    async with httpx.AsyncClient(base_url=chat.procs[0].http) as http:
        page = (await http.get(f"/chat/rooms/{room}/messages", headers=auth(ta))).json()
    talk = [m for m in page["items"] if m["type"] == "TALK"]
    assert [m["message"] for m in talk] == ["only once", "after"]
    assert talk[0]["clientMessageId"] == "c0ffee-1"


async def test_text_that_is_not_unicode_fails_alone(chat) -> None:
    """A lone surrogate gets its sender an ERROR; everyone else's messages, sent at the same
    moment on the same instances, are stored and receipted."""
    pairs = []
    for _ in range(4):
        alice, ta = chat.user()
        bob, tb = chat.user()
        room = await chat.room(alice, bob)
        a = await chat.client(0, ta)
        b = await chat.client(1, tb)
        await a.subscribe(room)
        await b.subscribe(room)
        pairs.append((room, a, b))
    attacker_room, attacker, _ = pairs[0]
    # json.dumps escapes the lone surrogate as \ud800, which json.loads turns back into one.
    body = json.dumps({"type": "TALK", "roomId": attacker_room, "message": "bad \ud800 text"})
    sends = []
    for i in range(20):
        for room, a, b in pairs[1:]:
            sends.append(await a.send(room, f"fine {i}"))
            sends.append(await b.send(room, f"also fine {i}"))
        if i == 10:
            await attacker.send_frame(
                "SEND",
                {"destination": "/pub/chat/message", "receipt": "bad"},
                body.encode(),
            )
    results = await asyncio.gather(*(f for f in sends if f is not None), return_exceptions=True)
    assert not [r for r in results if isinstance(r, BaseException)]
    async with asyncio.timeout(5):
        await attacker.closed.wait()
    assert attacker.errors and "Unicode" in (attacker.errors[0].get("message") or "")


async def test_a_bad_client_message_id_is_refused(chat) -> None:
    alice, ta = chat.user()
    bob, _ = chat.user()
    room = await chat.room(alice, bob)
    a = await chat.client(0, ta)
    fut = await a.send(room, "x", clientMessageId="~enter")
    assert fut is not None
    try:
        await fut
        raise AssertionError("a key shaped like the server's was accepted")
    except StompError as exc:
        assert "clientMessageId" in str(exc)


async def test_events_of_a_conversation_leave_through_the_outbox(chat) -> None:
    """Every stored message has exactly one chat.message.sent event on the stream, and the
    outbox is empty once they are there."""
    alice, ta = chat.user()
    bob, tb = chat.user()
    room = await chat.room(alice, bob)
    a = await chat.client(0, ta)
    b = await chat.client(1, tb)
    await a.subscribe(room)
    await b.subscribe(room)
    futs = [await a.send(room, f"e{i}") for i in range(10)]
    futs += [await b.send(room, f"f{i}") for i in range(10)]
    await asyncio.gather(*(f for f in futs if f is not None))
    stream = f"{chat.prefix}events.chat"
    async with asyncio.timeout(10):
        while True:
            ids = [
                event.data["messageId"]
                for event in await stream_events(chat.redis, stream)
                if event.type == "chat.message.sent" and event.data["roomId"] == room
            ]
            if len(ids) >= 22:
                break
            await asyncio.sleep(0.1)
    assert sorted(ids) == list(range(1, 23))  # two first visits (ENTER) and twenty TALKs
    from sqlalchemy import create_engine, text

    engine = create_engine(chat.database_url.replace("mysql://", "mysql+pymysql://"))
    try:
        async with asyncio.timeout(25):  # rows a killed instance left are swept too
            while True:
                with engine.connect() as conn:
                    left = conn.execute(text("SELECT COUNT(*) FROM chat_outbox")).scalar_one()
                if left == 0:
                    break
                await asyncio.sleep(0.2)
    finally:
        engine.dispose()
