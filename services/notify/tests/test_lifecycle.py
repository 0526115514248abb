"""Shutdown closes streams cleanly, and clients miss nothing by reconnecting elsewhere; the
whole service also runs in one process on SQLite and the in-process Redis (embedded mode)."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from datetime import UTC, datetime

import httpx
import uvicorn

from duochat_common.events import EventBus
from duochat_common.events.schemas import (
    CHAT_STREAM,
    ChatMessageSent,
    ChatRoomRead,
    Recipient,
    UserRef,
)
from duochat_common.redis_store import create_redis
from duochat_common.services import service
from duochat_notify.config import Settings
from duochat_notify.main import create_app


def chat(room: str, to: int, text: str, message_id: int = 1) -> ChatMessageSent:
    return ChatMessageSent(
        message_id=message_id,
        room_id=room,
        type="TALK",
        sender=UserRef(id=1, username="sender"),
        preview=text,
        created_at=datetime.now(UTC),
        recipients=[Recipient(id=to, username=f"user{to}", in_room=False)],
    )


async def test_sigterm_ends_streams_cleanly_and_a_reconnect_misses_nothing(cluster, sse):
    user, token = cluster.user()
    doomed = cluster.spare
    try:
        async with sse(doomed.url, token) as stream:
            await cluster.publish(chat("room-s", user, "before"))
            last = await stream.next()
            doomed.proc.terminate()  # SIGTERM, as ECS stops a task
            await asyncio.wait_for(stream.ended.wait(), 8)
            assert stream.error is None, f"stream broke instead of ending: {stream.error!r}"
            assert stream.events.empty()
        # uvicorn re-raises the signal once it has shut down gracefully.
        assert await asyncio.to_thread(doomed.proc.wait, 10) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in doomed.log.read_text()
    finally:
        doomed.stop()
    await cluster.publish(chat("room-s", user, "while away", message_id=2))
    async with sse(cluster.b.url, token, last_event_id=last.id) as again:
        assert (await again.next()).data["preview"] == "while away"
        await again.quiet(0.3)


async def test_embedded_mode_in_one_process(tmp_path, signer, sse):
    """SQLite and the in-process Redis, served by uvicorn inside this process."""
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/notify.db",
        redis_url=f"memory://notify-{uuid.uuid4().hex[:8]}",
        auth_jwks_json=json.dumps(signer.jwks()),
        keepalive_seconds=1,
        consumer_block_ms=200,
    )
    service("notify").migrate(settings)
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    bus = EventBus(create_redis(settings.redis_url))
    token = signer.token(42, "happydaddy")
    try:
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.get("/readyz")).json()["checks"] == {
                "database": "ok",
                "redis": "ok",
            }
            async with sse(url, token) as stream:
                await bus.publish(settings.key(CHAT_STREAM), chat("room-e", 42, "hi").envelope())
                event = await stream.next()
                assert (event.event, event.data["preview"]) == ("message", "hi")
                page = (
                    await http.get("/notify/alarms", headers={"Authorization": f"Bearer {token}"})
                ).json()
                assert page["unreadCount"] == 1
                read = ChatRoomRead(
                    room_id="room-e", user=UserRef(id=42, username="happydaddy"), last_read_id=1
                )
                await bus.publish(settings.key(CHAT_STREAM), read.envelope())
                assert (await stream.next()).data == {
                    "roomId": "room-e",
                    "ids": None,
                    "unreadCount": 0,
                }
                # Stopping the server ends the open stream properly.
                server.should_exit = True
                await asyncio.wait_for(stream.ended.wait(), 8)
                assert stream.error is None
        try:
            await asyncio.wait_for(asyncio.shield(serving), 10)
        except TimeoutError:
            for task in asyncio.all_tasks():
                task.print_stack(limit=6)
            raise
    finally:
        server.should_exit = True
        await bus.redis.aclose()
        if not serving.done():
            serving.cancel()
