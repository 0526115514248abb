"""Notify fan-out cost: Redis commands and notify CPU per delivered event, by open SSE streams.

Starts a Redis of its own (``redis-server`` on a free port, so that its command counts are this
benchmark's alone; or ``--cluster URL``, a Redis Cluster whose nodes it counts), a throwaway
MariaDB database, and two notify processes that both consume events. It then opens SSE streams
(one per user, half on each instance) in steps up to 5,000, and at each step publishes
``--events`` ``chat.message.sent`` events at ``--rate`` per second, each for one random
connected user who is not in the room, and waits until every one arrived on its stream.

For each step it reports, from the servers' own counters:
- Redis commands per delivered event (INFO commandstats, every command including those a script
  runs), and the same less the idle rate (slot refreshes and blocking reads that run anyway);
- notify CPU per delivered event (user + system time of both processes from /proc), and the same
  less the idle rate (keep-alive pings of the open streams);
- idle commands and CPU per second, measured over a quiet window at that step.

The idle work comes in bursts (each instance refreshes its streams' slots every 20 s), so both
the quiet window and the event window (``--events`` / ``--rate``) default to 20 s.

    .venv/bin/python -m bench.notify_fanout
    .venv/bin/python -m bench.notify_fanout --steps 500,5000 --events 1000
    .venv/bin/python -m bench.notify_fanout --cluster redis://127.0.0.1:7001/0
    .venv/bin/python -m bench.notify_fanout --code /path/to/other/checkout --no-record

``--code`` runs the notify and common packages of another checkout (for a before/after figure).
The results go to this benchmark's section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis

from bench.results import record
from duochat_common.events import EventBus
from duochat_common.events.schemas import CHAT_STREAM, ChatMessageSent, Recipient, UserRef
from duochat_common.redis_store import create_redis
from duochat_common.services import service
from duochat_common.testing import TestSigner, mariadb_database, unique_prefix

ROOT = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def own_redis() -> Iterator[str]:
    """A redis-server of this run alone, on a free port."""
    port = free_port()
    folder = tempfile.mkdtemp(prefix="bench-redis-")
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            folder,
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


async def node_urls(url: str, cluster: bool) -> list[str]:
    if not cluster:
        return [url]
    client: Any = create_redis(url, cluster=True)
    try:
        await client.initialize()  # learns the nodes
        nodes = client.get_nodes()
        return [f"redis://{node.host}:{node.port}/0" for node in nodes]
    finally:
        await client.aclose()


@dataclass(frozen=True)
class Counters:
    """What the Redis servers counted so far, summed over nodes."""

    commands: int  # every command run, those a script runs included (less INFO)
    bytes_in: int  # what clients sent
    cpu: float  # the servers' own CPU seconds

    def __sub__(self, other: Counters) -> Counters:
        return Counters(
            self.commands - other.commands, self.bytes_in - other.bytes_in, self.cpu - other.cpu
        )


async def redis_counters(urls: list[str]) -> Counters:
    commands = bytes_in = 0
    cpu = 0.0
    for url in urls:
        client = aioredis.Redis.from_url(url, decode_responses=True)
        try:
            stats: Any = await client.info("commandstats")
            info: Any = await client.info("everything")
        finally:
            await client.aclose()
        commands += sum(v["calls"] for k, v in stats.items() if k != "cmdstat_info")
        bytes_in += int(info["total_net_input_bytes"])
        cpu += float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
    return Counters(commands, bytes_in, cpu)


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


@dataclass
class Instance:
    name: str
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_notify(name: str, env: dict[str, str], code: Path, logs: Path) -> Instance:
    port = free_port()
    paths = [str(code / "services" / "notify"), str(code / "libs" / "common")]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            service("notify").app_ref,
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env={
            **os.environ,
            **env,
            "DUOCHAT_INSTANCE_ID": name,
            "PYTHONPATH": os.pathsep.join(paths),
        },
        stdout=(logs / f"{name}.log").open("wb"),
        stderr=subprocess.STDOUT,
        cwd=code,
    )
    return Instance(name, port, proc)


async def wait_ready(instance: Instance) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(600):
            if instance.proc.poll() is not None:
                raise RuntimeError(f"{instance.name} exited")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(instance.url + "/readyz", timeout=1)).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{instance.name} not ready")


@dataclass
class Tabs:
    """The SSE clients: raw sockets, counting ``message`` events and repeated ids."""

    delivered: int = 0
    duplicates: int = 0
    seen: dict[int, set[bytes]] = field(default_factory=dict)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def open(self, instance: Instance, user: int, ticket: str) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", instance.port)
        writer.write(
            f"GET /notify/stream?ticket={ticket} HTTP/1.1\r\nHost: notify\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        await writer.drain()
        status = await reader.readline()
        if b" 200 " not in status:
            raise RuntimeError(f"stream refused: {status!r}")
        while not (await reader.readline()).startswith(b": connected"):
            pass
        self.writers.append(writer)
        self.seen[user] = set()
        self.tasks.append(asyncio.create_task(self._read(user, reader)))

    async def _read(self, user: int, reader: asyncio.StreamReader) -> None:
        last_id = b""
        ids = self.seen[user]
        while line := await reader.readline():
            if line.startswith(b"id: "):
                last_id = line[4:].strip()
            elif line.startswith(b"event: message"):
                if last_id in ids:
                    self.duplicates += 1
                else:
                    ids.add(last_id)
                    self.delivered += 1

    async def close(self) -> None:
        for writer in self.writers:
            writer.transport.abort()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def open_tabs(
    tabs: Tabs, instances: list[Instance], users: list[int], signer: TestSigner
) -> None:
    limit = asyncio.Semaphore(32)
    async with httpx.AsyncClient(timeout=30) as http:

        async def one(index: int, user: int) -> None:
            instance = instances[index % len(instances)]
            async with limit:
                reply = await http.post(
                    instance.url + "/notify/ticket",
                    headers={"Authorization": f"Bearer {signer.token(user, f'u{user}')}"},
                )
                reply.raise_for_status()
                await tabs.open(instance, user, reply.json()["ticket"])

        await asyncio.gather(*(one(i, u) for i, u in enumerate(users)))


def event_for(user: int, n: int) -> Any:
    return ChatMessageSent(
        message_id=n,
        room_id=f"bench-room-{user}",
        type="TALK",
        sender=UserRef(id=1, username="sender"),
        preview=f"event {n}",
        created_at=datetime.now(UTC),
        recipients=[Recipient(id=user, username=f"u{user}", in_room=False)],
    ).envelope()


@dataclass
class Step:
    streams: int
    events: int
    seconds: float
    redis: Counters
    cpu: float
    idle_redis: Counters  # per second
    idle_cpu: float  # per second
    duplicates: int

    def row(self) -> str:
        per = self.events
        net_cmd = (self.redis.commands - self.idle_redis.commands * self.seconds) / per
        net_cpu = (self.cpu - self.idle_cpu * self.seconds) / per
        return (
            f"| {self.streams:,} | {self.events:,} | {self.redis.commands / per:.1f} "
            f"| {net_cmd:.1f} | {self.redis.bytes_in / per:,.0f} "
            f"| {self.redis.cpu / per * 1000:.3f} "
            f"| {self.cpu / per * 1000:.2f} | {net_cpu * 1000:.2f} "
            f"| {self.idle_redis.commands:.0f} | {self.idle_cpu * 1000:.0f} "
            f"| {self.duplicates} |"
        )


HEADER = (
    "| open streams | events | Redis commands / event | less idle | bytes to Redis / event "
    "| Redis CPU ms / event | notify CPU ms / event | less idle | idle commands / s "
    "| idle notify CPU ms / s | repeated |\n"
    "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


async def measure(
    *,
    tabs: Tabs,
    users: list[int],
    bus: EventBus,
    stream: str,
    nodes: list[str],
    pids: list[int],
    events: int,
    rate: float,
    quiet: float,
    first_n: int,
) -> Step:
    before_redis, before_cpu = await redis_counters(nodes), cpu_seconds(pids)
    await asyncio.sleep(quiet)
    idle = await redis_counters(nodes) - before_redis
    idle_redis = Counters(int(idle.commands / quiet), int(idle.bytes_in / quiet), idle.cpu / quiet)
    idle_cpu = (cpu_seconds(pids) - before_cpu) / quiet

    target = tabs.delivered + events
    duplicates = tabs.duplicates
    start_redis, start_cpu = await redis_counters(nodes), cpu_seconds(pids)
    started = time.monotonic()
    batch = max(1, int(rate / 20))
    for offset in range(0, events, batch):
        count = min(batch, events - offset)
        envelopes = [event_for(random.choice(users), first_n + offset + i) for i in range(count)]
        await bus.publish_many(stream, envelopes)
        await asyncio.sleep(max(0.0, started + (offset + count) / rate - time.monotonic()))
    deadline = time.monotonic() + 120
    while tabs.delivered < target and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if tabs.delivered < target:
        raise RuntimeError(f"only {tabs.delivered - target + events} of {events} delivered")
    seconds = time.monotonic() - started
    return Step(
        streams=len(users),
        events=events,
        seconds=seconds,
        redis=await redis_counters(nodes) - start_redis,
        cpu=cpu_seconds(pids) - start_cpu,
        idle_redis=idle_redis,
        idle_cpu=idle_cpu,
        duplicates=tabs.duplicates - duplicates,
    )


@contextlib.asynccontextmanager
async def redis_for(args: argparse.Namespace) -> AsyncIterator[tuple[str, bool]]:
    if args.cluster:
        yield args.cluster, True
        return
    with own_redis() as url:
        yield url, False


async def run(args: argparse.Namespace) -> list[Step]:
    steps = sorted(int(s) for s in args.steps.split(","))
    signer = TestSigner()
    code = Path(args.code).resolve()
    logs = Path(tempfile.mkdtemp(prefix="bench-notify-"))
    results: list[Step] = []
    async with redis_for(args) as (redis_url, cluster):
        with mariadb_database("bench_fanout") as database_url:
            subprocess.run(
                service("notify").migrate_command(),
                env={
                    **os.environ,
                    "DUOCHAT_DATABASE_URL": database_url,
                    "PYTHONPATH": f"{code}/services/notify{os.pathsep}{code}/libs/common",
                },
                cwd=code,
                check=True,
            )
            prefix = unique_prefix()
            env = {
                "DUOCHAT_ENVIRONMENT": "test",
                "DUOCHAT_DATABASE_URL": database_url,
                "DUOCHAT_REDIS_URL": redis_url,
                "DUOCHAT_REDIS_CLUSTER": str(cluster).lower(),
                "DUOCHAT_REDIS_PREFIX": prefix,
                "DUOCHAT_AUTH_JWKS_JSON": json.dumps(signer.jwks()),
                "DUOCHAT_LOG_LEVEL": "WARNING",
            }
            instances = [start_notify(n, env, code, logs) for n in ("fanout-a", "fanout-b")]
            redis = create_redis(redis_url, cluster=cluster)
            tabs = Tabs()
            try:
                for instance in instances:
                    await wait_ready(instance)
                nodes = await node_urls(redis_url, cluster)
                pids = [i.proc.pid for i in instances]
                bus = EventBus(redis)
                stream = prefix + CHAT_STREAM
                users: list[int] = []
                for streams in steps:
                    more = list(range(len(users) + 1000, streams + 1000))
                    await open_tabs(tabs, instances, more, signer)
                    users += more
                    await asyncio.sleep(2)  # past the burst of opening
                    step = await measure(
                        tabs=tabs,
                        users=users,
                        bus=bus,
                        stream=stream,
                        nodes=nodes,
                        pids=pids,
                        events=args.events,
                        rate=args.rate,
                        quiet=args.quiet,
                        first_n=len(results) * args.events,
                    )
                    print(step.row(), flush=True)
                    results.append(step)
            finally:
                await tabs.close()
                for instance in instances:
                    instance.proc.terminate()
                for instance in instances:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        instance.proc.wait(15)
                    if instance.proc.poll() is None:
                        instance.proc.kill()
                if cluster:
                    keys = [k async for k in redis.scan_iter(match=f"{prefix}*", count=1000)]
                    for start in range(0, len(keys), 500):
                        await redis.delete(*keys[start : start + 500])
                await redis.aclose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", default="500,1000,2500,5000", help="open streams per step")
    parser.add_argument("--events", type=int, default=6000, help="events per step")
    parser.add_argument("--rate", type=float, default=300.0, help="events published per second")
    parser.add_argument("--quiet", type=float, default=20.0, help="idle window per step, seconds")
    parser.add_argument("--cluster", default="", help="a Redis Cluster node URL (else own Redis)")
    parser.add_argument("--code", default=str(ROOT), help="checkout whose notify to run")
    parser.add_argument("--section", default="notify_fanout", help="RESULTS.md section name")
    parser.add_argument("--no-record", action="store_true", help="do not write RESULTS.md")
    args = parser.parse_args()
    print(HEADER, flush=True)
    steps = asyncio.run(run(args))
    if args.no_record:
        return
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    shape = "a 3-master Redis Cluster" if args.cluster else "one Redis (its own server)"
    code = "" if Path(args.code).resolve() == ROOT else f" (notify from `{args.code}`)"
    lines = [
        f"## Notify fan-out cost by open streams - {when}",
        "",
        f"`python -m bench.notify_fanout {' '.join(sys.argv[1:])}`".replace(" `", "`"),
        "",
        f"Two notify processes{code} (both consuming), {shape}, MariaDB; one SSE stream per"
        f" user, half on each instance; {args.events} `chat.message.sent` events per step at"
        f" {args.rate:.0f}/s, each for one random connected user. {platform.node()}:"
        f" {os.cpu_count()} cores, Python {platform.python_version()}.",
        "",
        HEADER,
        *(step.row() for step in steps),
    ]
    record(args.section, "\n".join(lines))


if __name__ == "__main__":
    main()
