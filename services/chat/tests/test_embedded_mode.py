"""The embedded mode's backends: SQLite and the in-process Redis (one process, as `make run`)."""

from __future__ import annotations

import asyncio

import httpx

from duochat_chat.config import Settings
from duochat_common.events.schemas import UserRef
from duochat_common.services import service
from duochat_common.testing import TestSigner
from duochat_testing.chat import ChatProcess, StompClient, Stub, chat_env, collect, new_room


async def test_sqlite_and_memory_redis(tmp_path) -> None:
    signer = TestSigner()
    stub = Stub(signer)
    url = f"sqlite:///{tmp_path / 'chat.db'}"
    service("chat").migrate(Settings(database_url=url))
    proc = ChatProcess(
        chat_env(database_url=url, redis_url="memory://chat-test", prefix="", stub=stub),
        log_path=tmp_path / "chat.log",
    )
    proc.start()
    try:
        await proc.wait_ready()
        alice, bob = UserRef(id=1, username="happydaddy"), UserRef(id=2, username="angrydaddy")
        room = new_room(alice, bob)
        stub.rooms[room.room_id] = room  # known to boards only: chat asks over HTTP
        ta, tb = signer.token(1, "happydaddy"), signer.token(2, "angrydaddy")
        a = await StompClient.open(proc.ws, ta)
        b = await StompClient.open(proc.ws, tb)
        await a.subscribe(room.room_id, since=0)
        await b.subscribe(room.room_id, since=0)
        for i in range(5):
            await asyncio.gather(*(f for f in [await a.send(room.room_id, f"a{i}")] if f))
            await asyncio.gather(*(f for f in [await b.send(room.room_id, f"b{i}")] if f))
        seen_a, seen_b = await collect(a, 10), await collect(b, 10)
        assert [m["message"] for m in seen_a] == [m["message"] for m in seen_b]
        assert [m["message"] for m in seen_a] == [x for i in range(5) for x in (f"a{i}", f"b{i}")]
        async with httpx.AsyncClient(base_url=proc.http) as http:
            page = (
                await http.get(
                    f"/chat/rooms/{room.room_id}/messages",
                    headers={"Authorization": f"Bearer {tb}"},
                )
            ).json()
        ids = [m["id"] for m in page["items"]]
        assert ids == list(range(1, len(ids) + 1))
        assert [m["message"] for m in page["items"] if m["type"] == "TALK"] == [
            m["message"] for m in seen_a
        ]
        await a.close()
        await b.close()
    finally:
        proc.stop()
        stub.close()
