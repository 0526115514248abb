"""The asyncio load generator: members of 2-person rooms speaking STOMP over WebSocket (our
chat) or Socket.IO (the peer), driven in a closed loop or an open loop.

A member's message text is ``<sender index>|<seq>|<send time, ns>``, so the receiving member
knows the latency and whose next message to trigger without parsing JSON.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import socketio

OnTalk = Callable[["Member", int, int], None]


@dataclass
class Member:
    idx: int
    room: str
    peer: int  # index of the other member of the room
    on_talk: OnTalk | None = None
    seq: int = 0
    received: int = 0
    receipts: int = 0
    errors: list[str] = field(default_factory=list)
    # The peer's message numbers this member received, how many arrived twice, and the
    # numbers of this member's own messages whose RECEIPT came (stored for sure).
    got: set[int] = field(default_factory=set)
    duplicates: int = 0
    receipted: set[int] = field(default_factory=set)

    async def send(self, sent_ns: int) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    def _talk(self, text: str) -> None:
        sender, _, rest = text.partition("|")
        seq, _, sent = rest.partition("|")
        self.received += 1
        if int(sender) == self.peer:
            number = int(seq)
            if number in self.got:
                self.duplicates += 1
            self.got.add(number)
        if self.on_talk is not None:
            self.on_talk(self, int(sender), int(sent))


class StompMember(Member):
    ws: aiohttp.ClientWebSocketResponse
    reader: asyncio.Task[None]

    @classmethod
    async def open(
        cls, session: aiohttp.ClientSession, url: str, token: str, idx: int, room: str, peer: int
    ) -> StompMember:
        self = cls(idx, room, peer)
        self.ws = await session.ws_connect(url, protocols=("v12.stomp",), autoping=True)
        await self.ws.send_str(
            f"CONNECT\naccept-version:1.2\nhost:duochat\nheart-beat:0,0\ntoken:{token}\n\n\x00"
        )
        reply = await self.ws.receive_str()
        if not reply.startswith("CONNECTED"):
            raise RuntimeError(reply[:300])
        await self.ws.send_str(
            f"SUBSCRIBE\nid:0\ndestination:/sub/chat/room/{room}\nreceipt:sub\n\n\x00"
        )
        subscribed = False
        while not subscribed:
            for frame in (await self.ws.receive_str()).split("\x00"):
                frame = frame.lstrip("\n")
                if frame.startswith("RECEIPT"):
                    subscribed = True
                elif frame.startswith("ERROR"):
                    raise RuntimeError(frame[:300])
        self.reader = asyncio.get_running_loop().create_task(self._read())
        return self

    async def _read(self) -> None:
        async for msg in self.ws:
            if isinstance(msg.data, str):
                # One WebSocket message may carry several frames, each ending with a NUL.
                for frame in msg.data.split("\x00"):
                    self._frame(frame.lstrip("\n"))

    def _frame(self, data: str) -> None:
        if data.startswith("MESSAGE"):
            if '"type":"TALK"' in data:
                i = data.find('"message":"') + 11
                self._talk(data[i : data.find('"', i)])
        elif data.startswith("RECEIPT"):
            self.receipts += 1
            i = data.find("receipt-id:") + 11
            number = data[i : data.find("\n", i)]
            if number.isdigit():
                self.receipted.add(int(number))
        elif data.startswith("ERROR"):
            self.errors.append(data[:300])

    async def send(self, sent_ns: int) -> None:
        if self.ws.closed:  # the server closed it (its ERROR is in ``errors``): nothing to send on
            return
        self.seq += 1
        body = (
            f'{{"type":"TALK","roomId":"{self.room}","message":"{self.idx}|{self.seq}|{sent_ns}"}}'
        )
        try:
            await self.ws.send_str(
                "SEND\ndestination:/pub/chat/message\ncontent-type:application/json\n"
                f"receipt:{self.seq}\n\n{body}\x00"
            )
        except aiohttp.ClientConnectionResetError:
            self.errors.append(f"socket closed while sending message {self.seq}")

    async def close(self) -> None:
        self.reader.cancel()
        await self.ws.close()


class SioMember(Member):
    client: socketio.AsyncClient

    @classmethod
    async def open(cls, url: str, idx: int, room: str, peer: int) -> SioMember:
        self = cls(idx, room, peer)
        self.client = socketio.AsyncClient(reconnection=False)

        @self.client.on("msg")
        async def on_msg(data: dict[str, Any]) -> None:
            self._talk(data["text"])

        await self.client.connect(url, transports=["websocket"])
        await self.client.call("join", {"room": room}, timeout=30)
        return self

    async def send(self, sent_ns: int) -> None:
        self.seq += 1
        await self.client.emit(
            "msg", {"room": self.room, "text": f"{self.idx}|{self.seq}|{sent_ns}"}
        )

    async def close(self) -> None:
        await self.client.disconnect()


@dataclass
class Run:
    delivered: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rate(self) -> float:
        return self.delivered / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    @property
    def median(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")


class Window:
    """Counts deliveries to the peer (not a sender's own echo) while measuring."""

    def __init__(self) -> None:
        self.measuring = False
        self.delivered = 0
        self.latencies: list[float] = []

    def record(self, member: Member, sender: int, sent_ns: int) -> bool:
        if sender == member.idx:
            return False
        if self.measuring:
            self.delivered += 1
            self.latencies.append((time.perf_counter_ns() - sent_ns) / 1e6)
        return True


def settle_heap() -> None:
    """Freeze what the generator holds before a phase (its connections, the servers' clients):
    a full collection pass over it took 90-100 ms in this process, long enough to show up as
    the servers' latency, in both systems' figures alike."""
    gc.collect()
    gc.freeze()


# Told True when the measured window opens and False when it closes, so the CPU counted is that
# of the messages counted (not the warm-up's, which would be charged to them otherwise).
OnWindow = Callable[[bool], None]


def _no_window(_opening: bool) -> None:
    pass


async def closed_loop(
    members: list[Member], *, warmup: float, duration: float, on_window: OnWindow = _no_window
) -> Run:
    """Each member sends its next message when its previous one reached its peer."""
    settle_heap()
    window = Window()
    loop = asyncio.get_running_loop()
    inflight: set[asyncio.Task[None]] = set()

    def on_talk(member: Member, sender: int, sent_ns: int) -> None:
        if window.record(member, sender, sent_ns) and running:
            task = loop.create_task(members[sender].send(time.perf_counter_ns()))
            inflight.add(task)
            task.add_done_callback(inflight.discard)

    running = True
    for m in members:
        m.on_talk = on_talk
    for m in members:
        await m.send(time.perf_counter_ns())
    await asyncio.sleep(warmup)
    on_window(True)
    window.measuring = True
    started = time.perf_counter()
    await asyncio.sleep(duration)
    window.measuring = False
    elapsed = time.perf_counter() - started
    on_window(False)
    running = False
    await asyncio.sleep(1.0)  # let the in-flight messages land before the next phase
    return Run(window.delivered, elapsed, window.latencies)


async def open_loop(
    members: list[Member], *, rate: float, duration: float, on_window: OnWindow = _no_window
) -> Run:
    """Messages at a fixed total rate, round-robin over members; latency from the planned
    send time (so a generator that falls behind shows up as latency, not as lower load)."""
    settle_heap()
    window = Window()

    def on_talk(member: Member, sender: int, sent_ns: int) -> None:
        window.record(member, sender, sent_ns)

    for m in members:
        m.on_talk = on_talk
    on_window(True)
    window.measuring = True
    interval_ns = int(1e9 / rate)
    total = int(rate * duration)
    start = time.perf_counter_ns()
    sent = 0
    while sent < total:
        now = time.perf_counter_ns()
        due = min(total, (now - start) // interval_ns + 1)
        while sent < due:
            await members[sent % len(members)].send(start + sent * interval_ns)
            sent += 1
        # Until the next message is due (a fixed 2 ms tick sent them up to 2 ms late, in bursts).
        await asyncio.sleep(max(0.0, (start + sent * interval_ns - time.perf_counter_ns()) / 1e9))
    elapsed = (time.perf_counter_ns() - start) / 1e9
    await asyncio.sleep(2.0)
    window.measuring = False
    on_window(False)
    return Run(window.delivered, elapsed, window.latencies)
