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

p50, p90, p99 and max are printed and written to this benchmark's section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import secrets
import statistics
import textwrap
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import websockets
from websockets.typing import Subprotocol

from bench.results import RESULTS
from bench.results import record as record_section
from duochat_chat.config import Settings as ChatSettings
from duochat_common.events.schemas import CHAT_STREAM
from duochat_common.redis_store import create_redis
from duochat_embedded import localstack

ROOT = Path(__file__).resolve().parents[1]
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
class Delivery:
    key: str  # the message text, unique per message
    tab: int
    ms: float  # SEND -> parsed SSE event
    received_at: float  # wall clock, seconds
    entry_ms: int  # the SSE id: the per-user delivery stream entry, in Redis's clock


@dataclass
class Run:
    sent: dict[str, tuple[float, float]] = field(default_factory=dict)  # perf, wall
    deliveries: list[Delivery] = field(default_factory=list)
    expected: int = 0
    duplicates: int = 0
    seen: set[tuple[int, str]] = field(default_factory=set)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    errors: list[str] = field(default_factory=list)

    def reset(self, expected: int) -> None:
        self.sent.clear()
        self.deliveries.clear()
        self.seen.clear()
        self.duplicates = 0
        self.done = asyncio.Event()
        self.expected = expected

    def on_event(self, tab: int, sse_id: str, alarm: dict[str, Any]) -> None:
        now, wall = time.perf_counter(), time.time()
        key = alarm["preview"]
        sent = self.sent.get(key)
        if sent is None or not self.expected:
            return
        if (tab, key) in self.seen:
            self.duplicates += 1
            return
        self.seen.add((tab, key))
        entry_ms = int(sse_id.split("-")[0])
        self.deliveries.append(Delivery(key, tab, (now - sent[0]) * 1000, wall, entry_ms))
        if len(self.deliveries) >= self.expected:
            self.done.set()


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
        sse_id, event, data = "", "", ""
        async for line in response.aiter_lines():
            if line.startswith(":"):
                opened.set()
            elif line.startswith("id:"):
                sse_id = line[3:].strip()
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data = line[5:].strip()
            elif line == "" and data:
                if event == "message":
                    run.on_event(tab, sse_id, json.loads(data))
                sse_id, event, data = "", "", ""


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
        ws = await websockets.connect(url, subprotocols=[Subprotocol("v12.stomp")], max_size=2**20)
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
        self.run.sent[text] = (time.perf_counter(), time.time())
        await self.ws.send(frame)

    async def close(self) -> None:
        if self.reader:
            self.reader.cancel()
        await self.ws.close()


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p90": float("nan"), "p99": float("nan"), "max": float("nan")}
    return {
        "p50": statistics.median(values),
        "p90": percentile(values, 0.9),
        "p99": percentile(values, 0.99),
        "max": max(values),
    }


async def published_at(redis_url: str, events_key: str, tag: str) -> dict[str, int]:
    """When chat appended each bench message's event to the chat events stream (Redis ms)."""
    redis = create_redis(redis_url)
    found: dict[str, int] = {}
    try:
        for entry_id, fields in await redis.xrange(events_key):
            data = json.loads(fields.get("event", "{}")).get("data", {})
            preview = str(data.get("preview", ""))
            if preview.startswith(f"bench {tag} "):
                found.setdefault(preview, int(entry_id.split("-")[0]))
    finally:
        await redis.aclose()
    return found


def stages(run: Run, published: dict[str, int]) -> dict[str, dict[str, float]]:
    """Split each delivery at chat's XADD to the events stream and notify's XADD to the
    user's delivery stream (both in Redis's clock, the same host clock as this process)."""
    chat: list[float] = []
    notify: list[float] = []
    deliver: list[float] = []
    for d in run.deliveries:
        at = published.get(d.key)
        if at is None:
            continue
        chat.append(at - run.sent[d.key][1] * 1000)
        notify.append(d.entry_ms - at)
        deliver.append(d.received_at * 1000 - d.entry_ms)
    return {"chat": summary(chat), "notify": summary(notify), "deliver": summary(deliver)}


async def measure(
    base_url: str, args: argparse.Namespace, *, redis_url: str | None, events_key: str | None
) -> dict[str, Any]:
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
            run.reset(expected=args.messages * args.tabs)
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
    published = await published_at(redis_url, events_key, tag) if redis_url and events_key else {}
    return {
        "load": os.getloadavg()[0],
        "streams": args.receivers * args.tabs,
        "receivers": args.receivers,
        "tabs": args.tabs,
        "writers": args.writers,
        "messages": args.messages,
        "rate": args.rate,
        "expected": run.expected,
        "received": len(run.deliveries),
        "duplicates": run.duplicates,
        "stored": stored,
        "errors": run.errors[:3],
        "total": summary([d.ms for d in run.deliveries]),
        "stages": stages(run, published) if published else None,
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


def row(name: str, s: dict[str, float], extra: str = "") -> str:
    return (
        f"| {name} | {s['p50']:.1f} ms | {s['p90']:.1f} ms | {s['p99']:.1f} ms "
        f"| {s['max']:.1f} ms |{extra}"
    )


def paragraph(text: str) -> list[str]:
    return textwrap.wrap(" ".join(text.split()), width=96)


def record(r: dict[str, Any]) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    verdict = "meets" if r["total"]["p99"] < 100 else "misses"
    lost = r["expected"] - r["received"]
    lines = [
        "",
        f"## Notify latency (STOMP SEND -> SSE event) - {now}",
        "",
        *paragraph(
            f"""`bench/notify_latency.py`: the local-services stack (auth, boards, chat and
            notify as separate uvicorn processes on MariaDB and Redis, nginx in front; every
            client goes through nginx). {r["streams"]} SSE streams open ({r["receivers"]}
            receivers x {r["tabs"]} tabs); {r["writers"]} writers SEND {r["messages"]} messages
            over STOMP at {r["rate"]:g}/s, round-robin over the receivers' rooms (no receiver is
            in its room), so each message is a `message` event on {r["tabs"]} streams. The clock
            runs from just before the SEND frame is written to the parsed SSE event, in the one
            client process."""
        ),
        "",
        "| SEND -> SSE event | p50 | p90 | p99 | max | deliveries | lost | duplicated |",
        "|---|---|---|---|---|---|---|---|",
        row(
            "all", r["total"], f" {r['received']} of {r['expected']} | {lost} | {r['duplicates']} |"
        ),
    ]
    if r["stages"]:
        lines += [
            "",
            "Where the time goes (split at the two Redis appends, whose ids carry Redis's clock):",
            "",
            "| stage | p50 | p90 | p99 | max |",
            "|---|---|---|---|---|",
            row("chat: SEND -> event appended to `events.chat`", r["stages"]["chat"]),
            row("notify: consumed, stored, appended to the user's stream", r["stages"]["notify"]),
            row("delivery: user's stream -> SSE via nginx -> parsed", r["stages"]["deliver"]),
        ]
    lines += [
        "",
        *paragraph(
            f"""Machine: {platform.machine()}, {os.cpu_count()} CPUs shared by every process
            (the services, MariaDB, Redis, nginx, this client, and whatever else was running:
            the 1-minute load average was {r["load"]:.1f} at the end of the run), Python
            {platform.python_version()}. The aim is p99 under 100 ms: this run {verdict} it."""
        ),
        "",
    ]
    section = "\n".join(lines)
    record_section("notify_latency", section)
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="a running gateway; default: start local services")
    parser.add_argument("--redis-url", help="with --base-url: its Redis, for the stage split")
    parser.add_argument("--redis-prefix", default="", help="with --base-url: its key prefix")
    parser.add_argument("--receivers", type=int, default=100)
    parser.add_argument("--tabs", type=int, default=5)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--rate", type=float, default=40.0, help="messages per second, in all")
    parser.add_argument("--no-record", action="store_true", help="do not touch bench/RESULTS.md")
    args = parser.parse_args()
    # Each writer sends to its rooms in turn; past chat's per-user send limit its SENDs get
    # ERROR frames and the receivers wait for alarms that never come.
    limit = float(
        os.environ.get(
            "DUOCHAT_SENDS_PER_SECOND", ChatSettings.model_fields["sends_per_second"].default
        )
    )
    if args.rate / args.writers > limit:
        parser.error(
            f"--rate {args.rate:g} over {args.writers} writers is {args.rate / args.writers:g} "
            f"SENDs a second per writer, past chat's limit of {limit:g} per user: give at least "
            f"--writers {math.ceil(args.rate / limit)}"
        )

    if args.base_url:
        events_key = f"{args.redis_prefix}{CHAT_STREAM}"
        result = asyncio.run(
            measure(
                args.base_url.rstrip("/"), args, redis_url=args.redis_url, events_key=events_key
            )
        )
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
            result = asyncio.run(
                measure(
                    stack.gateway_url,
                    args,
                    redis_url=redis_url,
                    events_key=f"{prefix}:{CHAT_STREAM}",
                )
            )
        finally:
            stack.stop()
            localstack.drop_databases(mysql, [f"{prefix}{name}" for name in ports])
            asyncio.run(drop_keys(redis_url, f"{prefix}:"))
    total = result["total"]
    print(
        f"notify latency over {result['received']}/{result['expected']} deliveries "
        f"({result['streams']} streams): p50 {total['p50']:.1f} ms, p90 {total['p90']:.1f} ms, "
        f"p99 {total['p99']:.1f} ms, max {total['max']:.1f} ms, "
        f"duplicates {result['duplicates']}, alarms stored {result['stored']}/{result['messages']}",
        flush=True,
    )
    for name, s in (result["stages"] or {}).items():
        print(f"  {name:8} p50 {s['p50']:6.1f} ms  p99 {s['p99']:6.1f} ms", flush=True)
    if result["errors"]:
        print("errors:", *result["errors"], sep="\n  ")
    if not args.no_record:
        record(result)
        print(f"recorded in {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
