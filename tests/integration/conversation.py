"""A short conversation through the gateway, for the tests that watch the metrics move.

A writer posts a board with an SSE stream open; an applicant applies (an ``applied`` alarm),
enters the room and writes while the writer is away (a ``message`` alarm), then both are in the
room and take turns. Every message is receipted (stored) and seen by both members.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from duochat_testing.chat import StompClient, collect
from tests.integration.flows import register_and_login


@dataclass
class Talked:
    room_id: str
    board_id: int
    writer: dict[str, str]
    applicant: dict[str, str]
    talk: int  # TALK messages sent (and receipted)
    entered: int  # ENTER lines stored: one per member's first visit
    alarms: dict[str, int]  # alarms the writer's SSE stream received, by kind


def talk(gateway_url: str, *, messages: int, during: Callable[[], None] | None = None) -> Talked:
    """Run the conversation on a loop of its own, in a thread: the browser tests keep a loop
    running in the main thread for the whole session. ``during`` runs (in another thread)
    while both sockets and the SSE stream are open."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _talk(gateway_url, messages, during)).result()


async def _talk(gateway_url: str, messages: int, during: Callable[[], None] | None) -> Talked:
    tag = uuid.uuid4().hex[:6]
    with httpx.Client(base_url=gateway_url, timeout=10) as sync:
        writer = register_and_login(sync, f"w{tag}")
        applicant = register_and_login(sync, f"a{tag}")
    ws_url = gateway_url.replace("http://", "ws://") + "/ws-stomp"
    alarms: dict[str, int] = {}
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as client:
        ticket = (await client.post("/notify/ticket", headers=writer)).json()["ticket"]
        async with client.stream("GET", "/notify/stream", params={"ticket": ticket}) as stream:
            assert stream.status_code == 200
            seen: asyncio.Queue[str] = asyncio.Queue()
            reader = asyncio.create_task(_events(stream, seen))
            try:
                board = (await client.post("/boards", json={"title": "t"}, headers=writer)).json()
                room = (await client.post(f"/boards/{board['id']}/apply", headers=applicant)).json()
                await _wait_for(seen, "applied", alarms)
                room_id = room["roomId"]
                a = await StompClient.open(ws_url, _token(applicant))
                await a.subscribe(room_id)
                await _sent(a, room_id, "are you there?")
                await _wait_for(seen, "message", alarms)  # the writer was not in the room
                w = await StompClient.open(ws_url, _token(writer))
                await w.subscribe(room_id)
                for n in range(1, messages - 1):
                    await _sent(w if n % 2 else a, room_id, f"message {n}")
                await _sent(w, room_id, "see you")
                # The writer came in after the first message (a SUBSCRIBE without since).
                for member, count in ((a, messages), (w, messages - 1)):
                    texts = [m["message"] for m in await collect(member, count, within=20)]
                    assert texts[-1] == "see you", texts
                if during is not None:
                    await asyncio.get_running_loop().run_in_executor(None, during)
                await a.close()
                await w.close()
            finally:
                reader.cancel()
    return Talked(room_id, board["id"], writer, applicant, messages, 2, alarms)


def _token(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


async def _sent(client: StompClient, room_id: str, text: str) -> None:
    receipt = await client.send(room_id, text)
    assert receipt is not None
    await asyncio.wait_for(receipt, 10)


async def _events(response: httpx.Response, queue: asyncio.Queue[str]) -> None:
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            await queue.put(line.removeprefix("event:").strip())


async def _wait_for(queue: asyncio.Queue[str], kind: str, counts: dict[str, int]) -> None:
    async with asyncio.timeout(15):
        while True:
            got = await queue.get()
            counts[got] = counts.get(got, 0) + 1
            if got == kind:
                return
