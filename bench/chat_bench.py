"""The chat benchmark: our STOMP chat (2 instances, every message stored in MariaDB) against
python-socketio with AsyncRedisManager (2 instances, no storage), on the same machine.

    .venv/bin/python -m bench.chat_bench            # what `make bench` runs
    .venv/bin/python bench/chat_bench.py --rooms 50 --duration 5 --idle 500   # a quick look

It starts everything it needs (a fresh MariaDB database, a Redis namespace, a stub for auth's
JWKS, the servers) and stops it all at the end. Workload: N rooms of 2 members, each member on
a different instance than its peer. Phases:

1. closed loop: each member sends its next message once its previous one reached the peer;
   every SEND asks for a RECEIPT (which comes only after the database commit);
2. open loop at a fixed total rate: send-to-deliver latency percentiles;
3. the same two phases against python-socketio;
4. STOMP CONNECT -> CONNECTED time on an idle instance;
5. server memory per idle, authenticated, subscribed connection, on a fresh instance.

Results are printed and written to this benchmark's section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import psutil  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402
from sqlalchemy import create_engine, insert  # noqa: E402

from bench.loadgen import Member, Run, SioMember, StompMember, closed_loop, open_loop  # noqa: E402
from bench.results import record  # noqa: E402
from duochat_chat.config import Settings  # noqa: E402
from duochat_chat.harness import ChatProcess, Stub, chat_env, free_port  # noqa: E402
from duochat_chat.messages import utcnow_ms  # noqa: E402
from duochat_chat.migrate import migrate  # noqa: E402
from duochat_chat.models import Room  # noqa: E402
from duochat_common.testing import REDIS_URL, TestSigner, mariadb_database, unique_prefix  # noqa: E402


def seed_rooms(database_url: str, count: int, first_user: int) -> list[tuple[str, int, int]]:
    """Rooms straight into chat's projection (boards is not part of this benchmark)."""
    rooms = []
    rows = []
    now = utcnow_ms()
    for i in range(count):
        a, b = first_user + 2 * i, first_user + 2 * i + 1
        room_id = f"bench-{first_user}-{i}"
        rooms.append((room_id, a, b))
        rows.append(
            {
                "room_id": room_id,
                "board_id": i + 1,
                "board_title": "bench",
                "writer_id": a,
                "writer_name": f"u{a}",
                "applicant_id": b,
                "applicant_name": f"u{b}",
                "status": "open",
                "last_id": 0,
                "updated_at": now,
            }
        )
    engine = create_engine(database_url.replace("mysql://", "mysql+pymysql://"))
    with engine.begin() as conn:
        for start in range(0, len(rows), 1000):
            conn.execute(insert(Room), rows[start : start + 1000])
    engine.dispose()
    return rooms


class Cpu:
    """CPU seconds of a set of processes between start() and stop()."""

    def __init__(self, pids: list[int]) -> None:
        self.procs = [psutil.Process(p) for p in pids]
        self.base = 0.0

    def _now(self) -> float:
        total = 0.0
        for proc in self.procs:
            try:
                t = proc.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    def start(self) -> None:
        self.base = self._now()

    def stop(self) -> float:
        return self._now() - self.base


def infra_pids() -> list[int]:
    names = {"mariadbd", "mysqld", "redis-server"}
    return [p.pid for p in psutil.process_iter(["name"]) if p.info["name"] in names]


@dataclass
class Phase:
    run: Run
    cpu: float  # server CPU seconds in the window
    infra_cpu: float

    def per_1000(self, cpu: float) -> float:
        return cpu / (self.run.delivered / 1000) if self.run.delivered else float("nan")


async def measure(coro: Any, servers: list[int]) -> Phase:
    cpu, infra = Cpu(servers), Cpu(infra_pids())
    cpu.start()
    infra.start()
    run = await coro
    return Phase(run, cpu.stop(), infra.stop())


async def stomp_phases(
    args: argparse.Namespace,
    env: dict[str, str],
    signer: TestSigner,
    database_url: str,
    procs: list[ChatProcess],
) -> dict[str, Any]:
    rooms = seed_rooms(database_url, args.rooms, first_user=1)
    out: dict[str, Any] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        members: list[Member] = []
        for i, (room_id, a, b) in enumerate(rooms):
            for j, uid in enumerate((a, b)):
                proc = procs[j]  # the writer on instance 0, the applicant on instance 1
                members.append(
                    await StompMember.open(
                        session,
                        proc.ws,
                        signer.token(uid, f"u{uid}"),
                        2 * i + j,
                        room_id,
                        2 * i + (1 - j),
                    )
                )
        pids = [p.proc.pid for p in procs if p.proc]
        out["closed"] = await measure(
            closed_loop(members, warmup=args.warmup, duration=args.duration), pids
        )
        out["open"] = await measure(
            open_loop(members, rate=args.rate, duration=args.duration), pids
        )
        out["errors"] = sum(len(m.errors) for m in members)
        out["receipts"] = sum(m.receipts for m in members)
        for m in members:
            await m.close()

        # CONNECT -> CONNECTED on an established socket, one at a time, on an idle instance.
        connect_ms, open_ms = [], []
        for i in range(args.connects):
            uid = 10_000_000 + i
            token = signer.token(uid, f"c{uid}")
            t0 = time.perf_counter()
            ws = await session.ws_connect(procs[0].ws, protocols=("v12.stomp",))
            t1 = time.perf_counter()
            await ws.send_str(f"CONNECT\naccept-version:1.2\nheart-beat:0,0\ntoken:{token}\n\n\x00")
            reply = await ws.receive_str()
            t2 = time.perf_counter()
            assert reply.startswith("CONNECTED"), reply[:200]
            connect_ms.append((t2 - t1) * 1000)
            open_ms.append((t2 - t0) * 1000)
            await ws.close()
        out["connect_ms"] = connect_ms
        out["open_connect_ms"] = open_ms
    return out


async def idle_memory(
    args: argparse.Namespace, env: dict[str, str], signer: TestSigner, database_url: str
) -> dict[str, Any]:
    """RSS per idle, authenticated, subscribed connection on a fresh instance."""
    baseline_n, n = 100, args.idle
    rooms = seed_rooms(database_url, (baseline_n + n) // 2 + 1, first_user=20_000_000)
    proc = ChatProcess({**env, "DUOCHAT_INSTANCE_ID": "bench-mem"})
    proc.start()
    try:
        await proc.wait_ready()
        assert proc.proc is not None
        ps = psutil.Process(proc.proc.pid)
        members: list[Member] = []
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

            async def one(k: int) -> None:
                room_id, a, b = rooms[k // 2]
                uid = (a, b)[k % 2]
                members.append(
                    await StompMember.open(
                        session, proc.ws, signer.token(uid, f"u{uid}"), k, room_id, k ^ 1
                    )
                )

            async def open_range(lo: int, hi: int) -> None:
                for start in range(lo, hi, 100):
                    await asyncio.gather(*(one(k) for k in range(start, min(hi, start + 100))))

            await open_range(0, baseline_n)
            await asyncio.sleep(3)
            rss0 = ps.memory_info().rss
            t0 = time.perf_counter()
            await open_range(baseline_n, baseline_n + n)
            opened_s = time.perf_counter() - t0
            await asyncio.sleep(5)  # the ENTERs are stored, presence settles
            rss1 = ps.memory_info().rss
            for m in members:
                await m.close()
        return {
            "connections": n,
            "rss0": rss0,
            "rss1": rss1,
            "per_conn_kib": (rss1 - rss0) / n / 1024,
            "open_s": opened_s,
        }
    finally:
        proc.stop()


async def sio_phases(args: argparse.Namespace, prefix: str) -> dict[str, Any]:
    import subprocess

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
        out = {
            "closed": await measure(
                closed_loop(members, warmup=args.warmup, duration=args.duration), pids
            ),
            "open": await measure(open_loop(members, rate=args.rate, duration=args.duration), pids),
        }
        for m in members:
            await m.close()
        return out
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)


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


def ms(x: float) -> str:
    return f"{x:.1f} ms" if x == x else "n/a"


def report(
    args: argparse.Namespace,
    ours: dict[str, Any],
    sio: dict[str, Any] | None,
    mem: dict[str, Any] | None,
    took: float,
) -> str:
    oc, oo = ours["closed"], ours["open"]
    lines = [
        f"## Chat throughput, latency, memory - {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Command: `{' '.join(['.venv/bin/python -m bench.chat_bench', *sys.argv[1:]])}` "
        f"({took:.0f} s). Machine: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}; "
        "load generator, both servers, MariaDB and Redis all on this machine "
        f"(load average at the start: {args.load:.1f}).",
        "",
        f"Workload: {args.rooms} rooms x 2 members, each member on a different instance than "
        "its peer. Ours: 2 chat processes (uvicorn, uvloop), every message stored in MariaDB "
        "before it fans out, a RECEIPT asked for every SEND. Peer: python-socketio "
        "AsyncServer + AsyncRedisManager, 2 processes (uvicorn), no storage. Delivered = "
        "reached the other member; both servers also echo to the sender.",
        "",
        "| | duochat chat (STOMP) | python-socketio | ratio |",
        "|---|---|---|---|",
    ]

    def row(name: str, mine: str, theirs: str, ratio: str = "") -> None:
        lines.append(f"| {name} | {mine} | {theirs} | {ratio} |")

    if sio:
        sc, so = sio["closed"], sio["open"]
        row(
            "closed loop: msgs/s delivered",
            f"{oc.run.rate:,.0f}",
            f"{sc.run.rate:,.0f}",
            f"{oc.run.rate / sc.run.rate:.2f}x" if sc.run.rate else "",
        )
        row(
            "closed loop: p50 / p99 / p99.9",
            f"{ms(oc.run.median)} / {ms(oc.run.pct(99))} / {ms(oc.run.pct(99.9))}",
            f"{ms(sc.run.median)} / {ms(sc.run.pct(99))} / {ms(sc.run.pct(99.9))}",
        )
        row(
            "closed loop: server CPU s per 1,000 msgs",
            f"{oc.per_1000(oc.cpu):.3f}",
            f"{sc.per_1000(sc.cpu):.3f}",
        )
        row(
            "closed loop: MariaDB+Redis CPU s per 1,000 msgs",
            f"{oc.per_1000(oc.infra_cpu):.3f}",
            f"{sc.per_1000(sc.infra_cpu):.3f}",
        )
        row(
            f"open loop {args.rate:.0f} msg/s: p50 / p99 / p99.9",
            f"{ms(oo.run.median)} / {ms(oo.run.pct(99))} / {ms(oo.run.pct(99.9))}",
            f"{ms(so.run.median)} / {ms(so.run.pct(99))} / {ms(so.run.pct(99.9))}",
        )
        row(
            f"open loop {args.rate:.0f} msg/s: delivered",
            f"{oo.run.delivered:,}",
            f"{so.run.delivered:,}",
        )
    else:
        row("closed loop: msgs/s delivered", f"{oc.run.rate:,.0f}", "not run")
        row(
            "closed loop: p50 / p99 / p99.9",
            f"{ms(oc.run.median)} / {ms(oc.run.pct(99))} / {ms(oc.run.pct(99.9))}",
            "",
        )
        row(
            f"open loop {args.rate:.0f} msg/s: p50 / p99 / p99.9",
            f"{ms(oo.run.median)} / {ms(oo.run.pct(99))} / {ms(oo.run.pct(99.9))}",
            "",
        )
    c = ours["connect_ms"]
    oc_ms = ours["open_connect_ms"]
    row(
        f"CONNECT -> CONNECTED, median / p99 ({len(c)} sequential)",
        f"{ms(statistics.median(c))} / {ms(sorted(c)[int(0.99 * len(c)) - 1])}",
        "",
    )
    row("WebSocket open + CONNECT, median", ms(statistics.median(oc_ms)), "")
    if mem:
        row(
            f"RSS per idle subscribed connection ({mem['connections']:,} connections)",
            f"{mem['per_conn_kib']:.1f} KiB",
            "",
        )
    lines.append("")
    verdicts = []
    if sio and sio["closed"].run.rate:
        ratio = oc.run.rate / sio["closed"].run.rate
        verdicts.append(
            f"throughput {ratio:.2f}x socketio (target >= 3x): "
            + ("met" if ratio >= 3 else "missed")
        )
    verdicts.append(
        f"open-loop p99 {ms(oo.run.pct(99))} (target < 25 ms): "
        + ("met" if oo.run.pct(99) < 25 else "missed")
    )
    verdicts.append(
        f"CONNECT median {ms(statistics.median(c))} (target < 10 ms): "
        + ("met" if statistics.median(c) < 10 else "missed")
    )
    if mem:
        verdicts.append(
            f"{mem['per_conn_kib']:.1f} KiB per idle connection (target <= 25 KiB): "
            + ("met" if mem["per_conn_kib"] <= 25 else "missed")
        )
    lines.append("Targets: " + "; ".join(verdicts) + ".")
    lines.append(f"Errors seen by our clients: {ours['errors']}; receipts: {ours['receipts']:,}.")
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> str:
    started = time.perf_counter()
    signer = TestSigner()
    stub = Stub(signer)
    prefix = unique_prefix()
    redis = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    with ExitStack() as stack:
        stack.callback(stub.close)
        database_url = stack.enter_context(mariadb_database("bench"))
        migrate(Settings(database_url=database_url))
        env = chat_env(
            database_url=database_url,
            redis_url=REDIS_URL,
            prefix=prefix,
            stub=stub,
            sends_per_second="1000",
            send_burst="1000",
            log_level="WARNING",
        )
        procs = [ChatProcess({**env, "DUOCHAT_INSTANCE_ID": f"bench{i}"}) for i in range(2)]
        try:
            for p in procs:
                p.start()
            await asyncio.gather(*(p.wait_ready() for p in procs))
            print(f"chat instances: pids {[p.proc.pid for p in procs if p.proc]}", file=sys.stderr)
            ours = await stomp_phases(args, env, signer, database_url, procs)
        finally:
            for p in procs:
                p.stop()
        sio = None if args.no_socketio else await sio_phases(args, prefix)
        mem = await idle_memory(args, env, signer, database_url) if args.idle else None
        keys = [k async for k in redis.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
    section = report(args, ours, sio, mem, time.perf_counter() - started)
    return section


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rooms", type=int, default=200)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measured phase")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--rate", type=float, default=1000.0, help="open-loop msgs/s")
    parser.add_argument("--idle", type=int, default=5000, help="idle connections (0 = skip)")
    parser.add_argument("--connects", type=int, default=300)
    parser.add_argument("--no-socketio", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="print only")
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
