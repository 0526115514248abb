"""The chat benchmark, on the stack as production runs it, against python-socketio.

    .venv/bin/python -m bench.chat_bench                 # what `make bench` runs
    .venv/bin/python -m bench.chat_bench --instances 2 --repeat 1 --no-socketio --idle 0

Ours: auth, boards, notify (consuming chat's events) and N chat instances, each its own uvicorn
process, against MariaDB and Redis; users, boards and rooms made through the public API (sign
up, post a board, apply). The two members of every room are on different chat instances. Every
SEND asks for a RECEIPT, which comes only once the message is stored. The chat limits are the
defaults a deployment runs with, but one: the send rate per user (20 a second, 40 in a burst,
a person's pace) is raised to ``SENDS_PER_SECOND``. In the closed loop each member sends its
next message as soon as its peer has the last one, 30 a second and more on a fast machine, and
is then cut off with "too many messages"; each of the 400 members stands for many slower users.
The check still runs on every SEND, so its cost is in the figures.

Peer: python-socketio AsyncServer + AsyncRedisManager on 2 instances (``bench/socketio_peer``),
no auth, no storage; its Redis pool cap is raised (redis-py 8 caps a pool at 100 connections,
and the manager publishes each emit on a connection of its own, so under this load it fails
with "Too many connections" and drops messages: its users would raise it too).

For each N (2, 4, 8 by default), ``--repeat`` rounds of: a closed loop (each member sends its
next message once its previous one reached the peer), then an open loop at a fixed rate
(send-to-deliver latency). CPU per delivered message is counted for chat alone and for chat +
notify + auth + boards + Redis + MariaDB. Then: CONNECT -> CONNECTED time, and the memory of an
idle, authenticated, subscribed connection on a fresh instance. Every message is checked: none
lost (receipted but never delivered to the peer), none delivered twice, none stored twice.

Yardstick: a bare one-process STOMP relay (``bench.bare_relay``: no auth, no storage, no
Redis) driven by the same members and loops in the same run, since this machine's speed moves
from hour to hour; chat's CPU per message is also given as a multiple of the relay's.

Results are printed and written to this benchmark's section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import psutil  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from bench.loadgen import Member, Run, SioMember, StompMember, closed_loop, open_loop  # noqa: E402
from bench.results import record  # noqa: E402
from bench.stack import MYSQL, Cpu, Room, Stack, infra_pids, make_rooms  # noqa: E402
from duochat_common.testing import REDIS_URL  # noqa: E402
from duochat_embedded.localstack import free_port  # noqa: E402

# The send rate per user the bench runs chat with (the default, 20 a second, is a person's pace).
SENDS_PER_SECOND = 1000


@dataclass
class Phase:
    run: Run
    chat_cpu: float  # CPU seconds of the chat instances (or the peer's servers)
    all_cpu: float  # with notify, auth, boards, Redis and MariaDB

    def us_per_msg(self, cpu: float) -> float:
        return cpu / self.run.delivered * 1e6 if self.run.delivered else float("nan")


@dataclass
class Round:
    closed: Phase
    open: Phase


async def measure(
    loop: Callable[..., Awaitable[Run]], servers: list[int], others: list[int]
) -> Phase:
    """Run ``loop`` and count the servers' CPU over its measured window only: CPU spent in
    the warm-up (and the drain after) on messages that are not counted is not charged to the
    counted ones."""
    mine, rest = Cpu(servers), Cpu(others)
    took: dict[str, float] = {}

    def on_window(opening: bool) -> None:
        if opening:
            mine.start()
            rest.start()
        else:
            took["chat"] = mine.stop()
            took["rest"] = rest.stop()

    run = await loop(on_window=on_window)
    return Phase(run, took["chat"], took["chat"] + took["rest"])


async def open_members(
    session: aiohttp.ClientSession, rooms: list[Room], ports: list[int]
) -> list[Member]:
    members: list[Member] = []
    n = len(ports)
    for i, room in enumerate(rooms):
        for j, user in enumerate((room.writer, room.applicant)):
            port = ports[(i + j) % n]  # the two members always on different instances
            members.append(
                await StompMember.open(
                    session,
                    f"ws://127.0.0.1:{port}/ws-stomp",
                    user.token,
                    2 * i + j,
                    room.room_id,
                    2 * i + (1 - j),
                )
            )
    return members


def check(members: list[Member]) -> dict[str, int]:
    """Lost: receipted (stored) but never delivered to the peer; delivered twice."""
    lost = dups = 0
    for m in members:
        peer = members[m.peer]
        lost += len(peer.receipted - m.got)
        dups += m.duplicates
    return {"lost": lost, "duplicated": dups, "errors": sum(len(m.errors) for m in members)}


def stored_twice(stack: Stack) -> int:
    engine = create_engine(f"{MYSQL}/{stack.db_prefix}chat".replace("mysql://", "mysql+pymysql://"))
    try:
        with engine.connect() as conn:
            total, distinct = conn.execute(
                text(
                    "SELECT COUNT(*), COUNT(DISTINCT message) FROM chat_messages WHERE type='TALK'"
                )
            ).one()
        return int(total) - int(distinct)
    finally:
        engine.dispose()


async def ours(args: argparse.Namespace, stack: Stack, rooms: list[Room], n: int) -> dict:
    ports = await asyncio.to_thread(stack.scale_chat, n)
    servers = stack.chat_pids()
    others = stack.service_pids("auth", "boards", "notify") + infra_pids()
    print(f"  {n} chat instances: {servers}", file=sys.stderr)
    rounds = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        members = await open_members(session, rooms, ports)
        for k in range(args.repeat):
            closed = await measure(
                partial(closed_loop, members, warmup=args.warmup, duration=args.duration),
                servers,
                others,
            )
            opened = await measure(
                partial(open_loop, members, rate=args.rate, duration=args.duration), servers, others
            )
            rounds.append(Round(closed, opened))
            print(
                f"  round {k + 1}: closed {closed.run.rate:,.0f} msg/s, "
                f"{closed.us_per_msg(closed.chat_cpu):.0f} us chat CPU/msg; "
                f"open p99 {opened.run.pct(99):.1f} ms, "
                f"{opened.us_per_msg(opened.chat_cpu):.0f} us chat CPU/msg",
                file=sys.stderr,
            )
        await asyncio.sleep(2.0)  # whatever is in flight lands
        checks = check(members)
        for m in members:
            await m.close()
    checks["stored twice"] = await asyncio.to_thread(stored_twice, stack)
    return {"rounds": rounds, "checks": checks}


async def connect_times(stack: Stack, rooms: list[Room], count: int) -> list[float]:
    """CONNECT -> CONNECTED on an open socket, one at a time."""
    out = []
    port = stack.chats[0][0]
    async with aiohttp.ClientSession() as session:
        for i in range(count):
            token = rooms[i % len(rooms)].writer.token
            ws = await session.ws_connect(
                f"ws://127.0.0.1:{port}/ws-stomp", protocols=("v12.stomp",)
            )
            t0 = time.perf_counter()
            await ws.send_str(f"CONNECT\naccept-version:1.2\nheart-beat:0,0\ntoken:{token}\n\n\x00")
            reply = await ws.receive_str()
            out.append((time.perf_counter() - t0) * 1000)
            assert reply.startswith("CONNECTED"), reply[:200]
            await ws.close()
    return out


async def idle_memory(stack: Stack, rooms: list[Room], n: int) -> dict[str, Any]:
    """RSS per idle, authenticated, subscribed connection, on a fresh instance of its own."""
    await asyncio.to_thread(stack.scale_chat, 1)
    ps = psutil.Process(stack.chat_pids()[0])
    port = stack.chats[0][0]
    baseline = 100
    members: list[Member] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one(k: int) -> None:
            room = rooms[(k // 2) % len(rooms)]
            user = (room.writer, room.applicant)[k % 2]
            url = f"ws://127.0.0.1:{port}/ws-stomp"
            members.append(await StompMember.open(session, url, user.token, k, room.room_id, k ^ 1))

        async def open_range(lo: int, hi: int) -> None:
            for start in range(lo, hi, 100):
                await asyncio.gather(*(one(k) for k in range(start, min(hi, start + 100))))

        await open_range(0, baseline)
        await asyncio.sleep(3)
        rss0 = ps.memory_info().rss
        await open_range(baseline, baseline + n)
        await asyncio.sleep(5)
        rss1 = ps.memory_info().rss
        for m in members:
            await m.close()
    return {"connections": n, "per_conn_kib": (rss1 - rss0) / n / 1024}


async def socketio(args: argparse.Namespace, prefix: str) -> list[Round]:
    ports = [free_port(), free_port()]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.socketio_peer",
                "--port",
                str(port),
                "--redis-url",
                REDIS_URL,
                "--channel",
                f"{prefix}socketio",
            ],
            cwd=ROOT,
        )
        for port in ports
    ]
    try:
        for port in ports:
            await wait_http(f"http://127.0.0.1:{port}/socket.io/?EIO=4&transport=polling")
        members: list[Member] = []
        for i in range(args.rooms):
            for j in range(2):
                members.append(
                    await SioMember.open(
                        f"http://127.0.0.1:{ports[j]}", 2 * i + j, f"room-{i}", 2 * i + (1 - j)
                    )
                )
        pids = [p.pid for p in procs]
        rounds = []
        for _ in range(args.repeat):
            closed = await measure(
                partial(closed_loop, members, warmup=args.warmup, duration=args.duration),
                pids,
                infra_pids(),
            )
            opened = await measure(
                partial(open_loop, members, rate=args.rate, duration=args.duration),
                pids,
                infra_pids(),
            )
            rounds.append(Round(closed, opened))
            print(
                f"  socketio round: closed {closed.run.rate:,.0f} msg/s, "
                f"{closed.us_per_msg(closed.chat_cpu):.0f} us CPU/msg; open "
                f"{opened.us_per_msg(opened.chat_cpu):.0f} us CPU/msg",
                file=sys.stderr,
            )
        for m in members:
            await m.close()
        return rounds
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)


async def bare(args: argparse.Namespace, rooms: list[Room]) -> list[Round]:
    """The yardstick (``bench.bare_relay``): the same members and loops on one bare process."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.bare_relay", "--port", str(port)], cwd=ROOT
    )
    try:
        await wait_http(f"http://127.0.0.1:{port}/")
        rounds = []
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            members = await open_members(session, rooms, [port])
            for _ in range(args.repeat):
                closed = await measure(
                    partial(closed_loop, members, warmup=args.warmup, duration=args.duration),
                    [proc.pid],
                    [],
                )
                opened = await measure(
                    partial(open_loop, members, rate=args.rate, duration=args.duration),
                    [proc.pid],
                    [],
                )
                rounds.append(Round(closed, opened))
                print(
                    f"  bare relay round: closed {closed.run.rate:,.0f} msg/s, "
                    f"{closed.us_per_msg(closed.chat_cpu):.0f} us CPU/msg; open "
                    f"{opened.us_per_msg(opened.chat_cpu):.0f} us CPU/msg",
                    file=sys.stderr,
                )
            for m in members:
                await m.close()
        return rounds
    finally:
        proc.terminate()
        proc.wait(10)


async def wait_http(url: str, within: float = 120) -> None:
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url) as reply:
                    if reply.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise TimeoutError(url)


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: list[float], fmt: str = "{:,.0f}") -> str:
    """The median, and the range over the rounds."""
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(med(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def report(args: argparse.Namespace, results: dict[str, Any], took: float) -> str:
    lines = [
        "## Chat at scale: throughput, latency, CPU, memory - "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Command: `{' '.join(['.venv/bin/python -m bench.chat_bench', *sys.argv[1:]])}` "
        f"({took:.0f} s). Machine: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}; "
        "the load generator, every service, MariaDB and Redis on this one machine "
        f"(load average at the start: {args.load:.1f}).",
        "",
        f"Workload: {args.rooms} rooms x 2 members, made through the public API; the members "
        "of a room on different chat instances; a RECEIPT asked for every SEND; notify consumes "
        f"chat's events. {args.repeat} round(s) per row: the median, and the range in "
        "brackets. CPU per delivered message: chat = the chat instances (for the peer, its "
        "servers); all = with notify, auth, boards, Redis and MariaDB.",
        "",
        "| | closed loop msgs/s | closed p50 / p99 | chat CPU per msg | all CPU per msg "
        f"| open loop {args.rate:,.0f}/s p50 / p99 | errors / lost / dup / stored twice |",
        "|---|---|---|---|---|---|---|",
    ]

    def row(name: str, rounds: list[Round], checks: dict[str, int] | None) -> None:
        c = [r.closed for r in rounds]
        o = [r.open for r in rounds]
        lines.append(
            f"| {name} | {spread([p.run.rate for p in c])} "
            f"| {med([p.run.median for p in c]):.1f} / {med([p.run.pct(99) for p in c]):.1f} ms "
            f"| {spread([p.us_per_msg(p.chat_cpu) for p in c])} us "
            f"| {spread([p.us_per_msg(p.all_cpu) for p in c])} us "
            f"| {med([p.run.median for p in o]):.1f} / "
            f"{spread([p.run.pct(99) for p in o], '{:.1f}')} ms "
            + (
                f"| {checks['errors']} / {checks['lost']} / {checks['duplicated']} / "
                f"{checks['stored twice']} |"
                if checks
                else "| n/a |"
            )
        )

    for n, out in results["ours"].items():
        row(f"duochat, {n} chat instances", out["rounds"], out["checks"])
    if results.get("socketio"):
        row("python-socketio, 2 instances", results["socketio"], None)
    if results.get("bare"):
        row("bare STOMP relay, 1 process (yardstick)", results["bare"], None)
    lines.append("")

    def rate(rounds: list[Round]) -> float:
        return med([r.closed.run.rate for r in rounds])

    def cpu(rounds: list[Round]) -> float:
        return med([r.closed.us_per_msg(r.closed.chat_cpu) for r in rounds])

    verdicts = []
    two = results["ours"].get(2)
    if two and results.get("socketio"):
        ratio = rate(two["rounds"]) / rate(results["socketio"])
        verdicts.append(f"closed loop at 2 instances {ratio:.2f}x socketio (target >= 2.0x)")
    if two:
        verdicts.append(
            f"chat CPU per message at 2 instances {cpu(two['rounds']):.0f} us (target <= 250 us)"
        )
        if results.get("bare"):
            yardstick = cpu(results["bare"])
            verdicts.append(
                f"that is {cpu(two['rounds']) / yardstick:.2f}x the bare relay's "
                f"{yardstick:.0f} us in this run (the socket work alone, on this machine "
                "at this hour)"
            )
        p99 = med([r.open.run.pct(99) for r in two["rounds"]])
        verdicts.append(f"open-loop p99 at 2 instances {p99:.1f} ms (target < 25 ms)")
    eight = results["ours"].get(8)
    if two and eight:
        verdicts.append(
            f"chat CPU per message at 8 instances {cpu(eight['rounds']) / cpu(two['rounds']):.2f}x "
            "that at 2 (target <= 1.10x)"
        )
    bad = sum(sum(out["checks"].values()) for out in results["ours"].values())
    verdicts.append(f"errors, lost, duplicated and stored twice, all N: {bad} (target 0)")
    if results.get("connect"):
        c = results["connect"]
        verdicts.append(
            f"CONNECT -> CONNECTED median {med(c):.1f} ms over {len(c)} (target < 10 ms)"
        )
    if results.get("memory"):
        m = results["memory"]
        verdicts.append(
            f"{m['per_conn_kib']:.1f} KiB per idle subscribed connection "
            f"({m['connections']:,} connections; target <= 25 KiB)"
        )
    lines.append("Against the targets: " + "; ".join(verdicts) + ".")
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> str:
    started = time.perf_counter()
    stack = Stack(
        run_dir=Path(args.run_dir or os.path.join("/tmp", f"duochat-bench-{os.getpid()}")),
        extra_env={
            "DUOCHAT_SENDS_PER_SECOND": str(SENDS_PER_SECOND),
            "DUOCHAT_SEND_BURST": str(2 * SENDS_PER_SECOND),
        },
    )
    stack.run_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"ours": {}}
    try:
        await asyncio.to_thread(stack.start)
        print(f"stack up (logs in {stack.run_dir}); making {args.rooms} rooms", file=sys.stderr)
        rooms = await make_rooms(stack, args.rooms)
        for n in args.instances:
            results["ours"][n] = await ours(args, stack, rooms, n)
        if not args.no_bare:
            results["bare"] = await bare(args, rooms)
        if args.connects:
            await asyncio.to_thread(stack.scale_chat, 2)
            results["connect"] = await connect_times(stack, rooms, args.connects)
        if args.idle:
            await asyncio.to_thread(stack.scale_chat, 0)
            results["memory"] = await idle_memory(stack, rooms, args.idle)
    finally:
        await asyncio.to_thread(stack.stop)
        await stack.drop_keys()
    if not args.no_socketio:
        results["socketio"] = await socketio(args, stack.redis_prefix)
    return report(args, results, time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rooms", type=int, default=200)
    parser.add_argument("--instances", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--repeat", type=int, default=3, help="rounds per instance count")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measured phase")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rate", type=float, default=1000.0, help="open-loop msgs/s")
    parser.add_argument("--idle", type=int, default=5000, help="idle connections (0 = skip)")
    parser.add_argument("--connects", type=int, default=300)
    parser.add_argument("--no-socketio", action="store_true")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare relay yardstick")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--run-dir", default="", help="where the services' logs go")
    args = parser.parse_args()
    args.load = os.getloadavg()[0]
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    section = asyncio.run(main_async(args))
    print(section)
    if not args.no_write:
        record("chat_bench", section)


if __name__ == "__main__":
    main()
