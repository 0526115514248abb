"""Notify latency: from a message SENT over STOMP to the SSE event at its recipient.

Starts the local-services stack (each service its own process on MariaDB and Redis, nginx in
front, as ``make services`` does, on free ports with throwaway databases and a Redis namespace),
signs up writers and receivers, has every receiver apply to a writer's board (one room each),
and opens ``--tabs`` SSE streams per receiver through the gateway (500 by default). Writers then
SEND messages over STOMP at ``--rate`` per second, round-robin over the rooms; no receiver is in
its room, so every message becomes a ``message`` event on each of its recipient's streams. The
clock starts just before the SEND frame is written and stops when the event is parsed, both in
this one process, so the client's own scheduling is inside the figures.

    .venv/bin/python -m bench.notify_latency
    .venv/bin/python -m bench.notify_latency --receivers 100 --tabs 5 --rate 40 --messages 400

p50, p90, p99 and max are printed and appended as a dated section to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import secrets
import statistics
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import websockets

from duochat_common.redis_store import create_redis
from duochat_embedded import localstack

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
PASSWORD = "bench-password-1"
# Hashing passwords is not what this measures: sign-up of a hundred users at production argon2
# cost would take minutes on two cores. The stack runs in development mode, which allows this.
CHEAP_PASSWORDS = {
    "DUOCHAT_PASSWORD_TIME_COST": "1",
    "DUOCHAT_PASSWORD_MEMORY_KIB": "8192",
    "DUOCHAT_PASSWORD_PARALLELISM": "1",
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


@dataclass
class User:
    id: int
    name: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Run:
    sent: dict[str, float] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    after_store: list[float] = field(default_factory=list)
    order: list[int] = field(default_factory=list)
    expected: int = 0
    received: int = 0
    duplicates: int = 0
    seen: set[tuple[int, str]] = field(default_factory=set)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    errors: list[str] = field(default_factory=list)


async def sign_up(api: httpx.AsyncClient, name: str) -> User:
    reply = await api.post("/auth/register", json={"username": name, "password": PASSWORD})
    reply.raise_for_status()
    login = await api.post("/auth/login", json={"username": name, "password": PASSWORD})
    login.raise_for_status()
    return User(reply.json()["id"], name, login.json()["accessToken"])


async def gather_limited(coros: list[Any], limit: int = 8) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(coro: Any) -> Any:
        async with gate:
            return await coro

    return list(await asyncio.gather(*(one(c) for c in coros)))


async def read_stream(
    http: httpx.AsyncClient, user: User, tab: int, run: Run, opened: asyncio.Event
) -> None:
    ticket = (await http.post("/notify/ticket", headers=user.auth)).json()["ticket"]
    async with http.stream("GET", "/notify/stream", params={"ticket": ticket}) as response:
        response.raise_for_status()
        event, data = "", ""
        async for line in response.aiter_lines():
            if line.startswith(":"):
                opened.set()
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data = line[5:].strip()
            elif line == "" and data:
                now = time.perf_counter()
                if event == "message":
                    alarm = json.loads(data)
                    key = alarm["preview"]
                    started = run.sent.get(key)
                    if started is not None and run.expected:
                        if (tab, key) in run.seen:
                            run.duplicates += 1
                        else:
                            run.seen.add((tab, key))
                            run.latencies.append((now - started) * 1000)
                            # Chat's timestamp of the stored message splits the time in two:
                            # SEND -> stored (chat) and stored -> SSE (events, notify, nginx).
                            stored = datetime.fromisoformat(alarm["createdAt"]).timestamp()
                            run.after_store.append((time.time() - stored) * 1000)
                            run.order.append(int(key.rsplit(" ", 1)[1]))
                            run.received += 1
                            if run.received >= run.expected:
                                run.done.set()
                event, data = "", ""


async def count_alarms(http: httpx.AsyncClient, user: User, tag: str) -> int:
    """How many of this run's messages notify stored as alarms for ``user``."""
    count, cursor = 0, None
    while True:
        params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = (await http.get("/notify/alarms", params=params, headers=user.auth)).json()
        count += sum(1 for a in page["items"] if a["preview"].startswith(f"bench {tag} "))
        cursor = page["nextCursor"]
        if cursor is None:
            return count


class Stomp:
    """Just enough STOMP 1.2 over WebSocket to SEND as a writer."""

    def __init__(self, ws: Any, run: Run) -> None:
        self.ws = ws
        self.run = run
        self.reader: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, url: str, user: User, run: Run) -> Stomp:
        ws = await websockets.connect(url, subprotocols=["v12.stomp"], max_size=2**20)
        await ws.send(
            f"CONNECT\naccept-version:1.2\nhost:duochat\nheart-beat:0,0\ntoken:{user.token}\n\n\x00"
        )
        frame = str(await ws.recv())
        if not frame.startswith("CONNECTED"):
            raise RuntimeError(f"STOMP CONNECT refused: {frame[:200]!r}")
        client = cls(ws, run)
        client.reader = asyncio.create_task(client._drain())
        return client

    async def _drain(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for frame in self.ws:
                if str(frame).startswith("ERROR"):
                    self.run.errors.append(str(frame)[:300])

    async def send(self, room_id: str, text: str) -> None:
        body = json.dumps({"type": "TALK", "roomId": room_id, "message": text})
        frame = f"SEND\ndestination:/pub/chat/message\ncontent-type:application/json\n\n{body}\x00"
        self.run.sent[text] = time.perf_counter()
        await self.ws.send(frame)

    async def close(self) -> None:
        if self.reader:
            self.reader.cancel()
        await self.ws.close()


async def measure(base_url: str, args: argparse.Namespace) -> dict[str, Any]:
    run = Run()
    tag = secrets.token_hex(3)
    limits = httpx.Limits(
        max_connections=args.receivers * args.tabs + 50, max_keepalive_connections=50
    )
    timeout = httpx.Timeout(30, read=None)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout) as http:
        writers = await gather_limited([sign_up(http, f"bw{tag}{i}") for i in range(args.writers)])
        receivers = await gather_limited(
            [sign_up(http, f"br{tag}{i}") for i in range(args.receivers)]
        )
        boards = []
        for writer in writers:
            reply = await http.post("/boards", json={"title": f"bench {tag}"}, headers=writer.auth)
            reply.raise_for_status()
            boards.append(reply.json()["id"])

        async def apply(i: int, receiver: User) -> tuple[str, int]:
            reply = await http.post(
                f"/boards/{boards[i % len(boards)]}/apply", headers=receiver.auth
            )
            reply.raise_for_status()
            return reply.json()["roomId"], i % len(boards)

        rooms = await gather_limited([apply(i, r) for i, r in enumerate(receivers)])
        print(f"{len(writers)} writers, {len(receivers)} receivers, {len(rooms)} rooms", flush=True)

        opened = [asyncio.Event() for _ in range(args.receivers * args.tabs)]
        readers = []
        for i, receiver in enumerate(receivers):
            for tab in range(args.tabs):
                n = i * args.tabs + tab
                readers.append(asyncio.create_task(read_stream(http, receiver, n, run, opened[n])))
            if i % 10 == 9:
                await asyncio.sleep(0.05)  # do not open 500 streams in one burst
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in opened)), 60)
        print(f"{len(opened)} SSE streams open", flush=True)

        ws_url = base_url.replace("http://", "ws://") + "/ws-stomp"
        stomps = [await Stomp.connect(ws_url, w, run) for w in writers]
        try:
            # Warm-up: one message per room (chat learns each room from boards; not counted).
            for k, (room_id, w) in enumerate(rooms):
                await stomps[w].send(room_id, f"warm {tag} {k}")
                await asyncio.sleep(1 / args.rate)
            await asyncio.sleep(2)
            run.sent.clear()
            run.latencies.clear()
            run.after_store.clear()
            run.order.clear()
            run.seen.clear()
            run.received = run.duplicates = 0
            run.done = asyncio.Event()
            run.expected = args.messages * args.tabs
            started = time.perf_counter()
            for k in range(args.messages):
                room_id, w = rooms[k % len(rooms)]
                await stomps[w].send(room_id, f"bench {tag} {k}")
                pause = started + (k + 1) / args.rate - time.perf_counter()
                if pause > 0:
                    await asyncio.sleep(pause)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run.done.wait(), 30)
            stored = sum(await gather_limited([count_alarms(http, r, tag) for r in receivers]))
        finally:
            for stomp in stomps:
                await stomp.close()
            broken = [r for r in readers if r.done() and r.exception() is not None]
            for reader in broken[:3]:
                run.errors.append(f"SSE reader failed: {reader.exception()!r}")
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
    lat = run.latencies
    tail = [ms for ms, k in zip(lat, run.order, strict=True) if k >= args.messages * 0.9]
    head = [ms for ms, k in zip(lat, run.order, strict=True) if k < args.messages * 0.1]
    return {
        "after_store_p50": statistics.median(run.after_store) if lat else float("nan"),
        "after_store_p99": percentile(run.after_store, 0.99) if lat else float("nan"),
        "first_tenth_p50": statistics.median(head) if head else float("nan"),
        "last_tenth_p50": statistics.median(tail) if tail else float("nan"),
        "streams": args.receivers * args.tabs,
        "receivers": args.receivers,
        "tabs": args.tabs,
        "writers": args.writers,
        "messages": args.messages,
        "rate": args.rate,
        "expected": run.expected,
        "received": run.received,
        "duplicates": run.duplicates,
        "stored": stored,
        "errors": run.errors[:3],
        "p50": statistics.median(lat) if lat else float("nan"),
        "p90": percentile(lat, 0.9) if lat else float("nan"),
        "p99": percentile(lat, 0.99) if lat else float("nan"),
        "max": max(lat) if lat else float("nan"),
    }


async def drop_keys(redis_url: str, prefix: str) -> None:
    """Remove the run's Redis namespace (streams, tickets, consumer groups)."""
    redis = create_redis(redis_url)
    try:
        keys = [key async for key in redis.scan_iter(match=f"{prefix}*", count=1000)]
        for start in range(0, len(keys), 500):
            await redis.delete(*keys[start : start + 500])
    finally:
        await redis.aclose()


def record(result: dict[str, Any]) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    verdict = "meets" if result["p99"] < 100 else "misses"
    lost = result["expected"] - result["received"]
    section = f"""
## Notify latency (STOMP SEND -> SSE event) - {now}

`bench/notify_latency.py`: the local-services stack (auth, boards, chat, notify as separate
uvicorn processes on MariaDB and Redis, nginx in front; clients go through nginx).
{result["streams"]} SSE streams open ({result["receivers"]} receivers x {result["tabs"]} tabs),
{result["writers"]} writers sending {result["messages"]} messages over STOMP at \
{result["rate"]:g}/s, round-robin over the receivers' rooms (none of them in the room), so each
message is a `message` event on {result["tabs"]} streams. The clock runs from just before the
SEND frame is written to the parsed SSE event, in the one client process.

| deliveries | p50 | p90 | p99 | max | lost | duplicated |
|---|---|---|---|---|---|---|
| {result["received"]} of {result["expected"]} | {result["p50"]:.1f} ms | {result["p90"]:.1f} ms \
| {result["p99"]:.1f} ms | {result["max"]:.1f} ms | {lost} | {result["duplicates"]} |

Machine: {platform.machine()}, {os.cpu_count()} CPUs (shared by every process, the client
included), Python {platform.python_version()}. The aim is p99 under 100 ms: this run {verdict} it.
"""
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmark results\n")
    with RESULTS.open("a") as f:
        f.write(section)
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="a running gateway; default: start local services")
    parser.add_argument("--receivers", type=int, default=100)
    parser.add_argument("--tabs", type=int, default=5)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--rate", type=float, default=40.0, help="messages per second, in all")
    parser.add_argument("--no-record", action="store_true", help="do not touch bench/RESULTS.md")
    args = parser.parse_args()

    if args.base_url:
        result = asyncio.run(measure(args.base_url.rstrip("/"), args))
    else:
        os.environ.update(CHEAP_PASSWORDS)
        prefix = f"bench_{uuid.uuid4().hex[:6]}_"
        mysql = os.environ.get("DUOCHAT_MYSQL", "mysql://root@127.0.0.1:3306")
        redis_url = os.environ.get("DUOCHAT_REDIS", "redis://127.0.0.1:6379/0")
        ports = {name: localstack.free_port() for name in ("auth", "boards", "chat", "notify")}
        stack = localstack.start(
            mysql_server=mysql,
            redis_url=redis_url,
            db_prefix=prefix,
            redis_prefix=f"{prefix}:",
            gateway_port=localstack.free_port(),
            ports=ports,
        )
        try:
            result = asyncio.run(measure(stack.gateway_url, args))
        finally:
            stack.stop()
            localstack.drop_databases(mysql, [f"{prefix}{name}" for name in ports])
            asyncio.run(drop_keys(redis_url, f"{prefix}:"))
    print(
        f"notify latency over {result['received']}/{result['expected']} deliveries "
        f"({result['streams']} streams): p50 {result['p50']:.1f} ms, p90 {result['p90']:.1f} ms, "
        f"p99 {result['p99']:.1f} ms, max {result['max']:.1f} ms, "
        f"duplicates {result['duplicates']}, alarms stored {result['stored']}/{result['messages']}",
        flush=True,
    )
    print(
        f"  stored -> SSE: p50 {result['after_store_p50']:.1f} ms, "
        f"p99 {result['after_store_p99']:.1f} ms; p50 of the first tenth "
        f"{result['first_tenth_p50']:.1f} ms, of the last tenth {result['last_tenth_p50']:.1f} ms",
        flush=True,
    )
    if result["errors"]:
        print("STOMP errors:", *result["errors"], sep="\n  ")
    if not args.no_record:
        record(result)
        print(f"appended to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
