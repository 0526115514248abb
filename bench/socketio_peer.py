"""The peer a Python developer would pick instead: python-socketio with AsyncRedisManager.

Run as a server (one instance per process, several share a Redis channel):

    .venv/bin/python -m bench.socketio_peer --port 9101 --redis-url redis://127.0.0.1:6379/0

Events: ``join {room}`` enters a room; ``msg {room, text}`` is emitted to everyone in the room
(the sender too, as our chat echoes it), across instances through Redis pub/sub. No auth, no
storage, no ids: the cheapest honest equivalent of the chat service's hot path.
"""

from __future__ import annotations

import argparse
from typing import Any

import socketio
import uvicorn

# The manager publishes every emit on a pooled connection of its own; redis-py 8 caps a pool at
# 100 connections and then raises "Too many connections", which the manager logs and retries
# while messages pile up. Its users raise the cap, as done here.
REDIS_MAX_CONNECTIONS = 2000


def build_app(redis_url: str, channel: str) -> Any:
    manager = socketio.AsyncRedisManager(
        redis_url, channel=channel, redis_options={"max_connections": REDIS_MAX_CONNECTIONS}
    )
    sio = socketio.AsyncServer(
        async_mode="asgi",
        client_manager=manager,
        cors_allowed_origins="*",
        transports=["websocket"],
    )

    @sio.on("join")
    async def join(sid: str, data: dict[str, Any]) -> bool:
        await sio.enter_room(sid, data["room"])
        return True

    @sio.on("msg")
    async def msg(sid: str, data: dict[str, Any]) -> None:
        await sio.emit("msg", data, room=data["room"])

    return socketio.ASGIApp(sio)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--channel", default="bench-socketio")
    args = parser.parse_args()
    uvicorn.run(
        build_app(args.redis_url, args.channel),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        backlog=4096,
    )


if __name__ == "__main__":
    main()
