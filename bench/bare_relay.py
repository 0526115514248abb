"""The machine's yardstick for chat's CPU per message: a bare one-process STOMP relay.

    .venv/bin/python -m bench.bare_relay --port 9102

No auth, no storage, no Redis: CONNECT is answered at once, SUBSCRIBE puts the socket in its
room, and a SEND goes as a MESSAGE to every socket in the room (the sender too, as chat echoes
it) followed by the sender's RECEIPT. Served by uvicorn with the WebSocket settings chat runs
with. ``chat_bench`` drives it with the same members and closed loop as chat, in the same run,
so that chat's figure can be read against what the machine charges for the bare socket work:
the issue's 250 us target was set where such a relay spent about 145 us.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import uvicorn

from duochat_common.serving import uvicorn_options

Rooms = dict[str, set[Any]]  # room -> its sockets' send callables


def _frame(raw: str) -> tuple[str, dict[str, str], str]:
    head, _, body = raw.lstrip("\n").partition("\n\n")
    command, *lines = head.split("\n")
    headers = dict(line.split(":", 1) for line in lines if ":" in line)
    return command, headers, body


def app_factory() -> Any:
    rooms: Rooms = {}
    counter = iter(range(1, 1 << 62))

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            if scope["type"] == "http":
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"ok"})
            return
        joined: list[str] = []

        async def out(text: str) -> None:
            await send({"type": "websocket.send", "text": text})

        try:
            while True:
                event = await receive()
                if event["type"] == "websocket.connect":
                    await send({"type": "websocket.accept", "subprotocol": "v12.stomp"})
                    continue
                if event["type"] == "websocket.disconnect":
                    return
                for raw in (event.get("text") or "").split("\x00"):
                    if raw.strip("\n"):
                        await _handle(_frame(raw), out, joined, rooms, counter)
        finally:
            for room in joined:
                rooms.get(room, set()).discard(out)

    return app


async def _handle(
    frame: tuple[str, dict[str, str], str], out: Any, joined: list[str], rooms: Rooms, ids: Any
) -> None:
    command, headers, body = frame
    if command == "CONNECT":
        await out("CONNECTED\nversion:1.2\nheart-beat:0,0\n\n\x00")
    elif command == "SUBSCRIBE":
        room = headers["destination"].rsplit("/", 1)[-1]
        rooms.setdefault(room, set()).add(out)
        joined.append(room)
        await out(f"RECEIPT\nreceipt-id:{headers.get('receipt', '')}\n\n\x00")
    elif command == "SEND":
        data = json.loads(body)
        room = data["roomId"]
        message = json.dumps(
            {"id": next(ids), "type": "TALK", "roomId": room, "message": data["message"]},
            separators=(",", ":"),
        )
        frame_out = (
            f"MESSAGE\ndestination:/sub/chat/room/{room}\nsubscription:0\n"
            f"message-id:{next(ids)}\ncontent-type:application/json\n\n{message}\x00"
        )
        for peer in list(rooms.get(room, ())):
            if peer is out:
                continue
            await peer(frame_out)
        await out(frame_out + f"RECEIPT\nreceipt-id:{headers.get('receipt', '')}\n\n\x00")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        app_factory(),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        **uvicorn_options("chat"),
    )


if __name__ == "__main__":
    main()
