"""Auth under a sign-in flood: bounded argon2 hashing keeps the service answering.

Issue 12, finding 3: twenty concurrent logins for names that do not exist made a real login take
5-10 s, ``/healthz`` 303 ms, and the process 0.9-1.2 GB. This starts one auth service as it ships
(its own uvicorn process on MariaDB and Redis, argon2id at the production cost: time 3, 64 MiB,
4 lanes), keeps ``--concurrency`` logins in flight for ``--seconds`` (each client sends its next
login the moment the last one is answered, 503 or not, as an attacker would), and meanwhile:

- probes ``/healthz`` every 50 ms from a process of its own (so the load generator's own event
  loop is not in the figure);
- signs a real user in once a second, honouring ``Retry-After`` as the web app does;
- samples the service's resident memory (``/proc/PID/status``), and reads its peak at the end.

Every client connects straight to the service; the per-address failure limit is lifted for the
run (all clients are one address here, and the limit is not what this measures).

    .venv/bin/python -m bench.auth_hashing
    .venv/bin/python -m bench.auth_hashing --concurrency 40 --seconds 30

The figures are printed and written to this benchmark's section of bench/RESULTS.md. The aims:
``/healthz`` p99 under 50 ms, peak RSS under 512 MiB, no request waiting over 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.results import RESULTS
from bench.results import record as record_section
from duochat_common.logs import uvicorn_log_config
from duochat_common.services import service
from duochat_common.serving import uvicorn_cli
from duochat_embedded.localstack import create_databases, drop_databases, free_port, wait_ready

MYSQL = os.environ.get("DUOCHAT_MYSQL", "mysql://root@127.0.0.1:3306")
REDIS = os.environ.get("DUOCHAT_REDIS", "redis://127.0.0.1:6379/0")
PASSWORD = "bench hashing 2026"
PROBE_INTERVAL_S = 0.05


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def rss_mib(pid: int, field_name: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def probe(url: str, seconds: float, out: multiprocessing.Queue[list[float]]) -> None:
    """``/healthz`` latencies (ms), one every 50 ms, on a connection of its own."""
    samples: list[float] = []
    deadline = time.monotonic() + seconds
    with httpx.Client(timeout=10) as client:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            client.get(f"{url}/healthz").raise_for_status()
            samples.append((time.perf_counter() - started) * 1000)
            time.sleep(max(0.0, PROBE_INTERVAL_S - (time.perf_counter() - started)))
    out.put(samples)


@dataclass
class Tally:
    latencies: dict[int, list[float]] = field(default_factory=dict)

    def add(self, status: int, ms: float) -> None:
        self.latencies.setdefault(status, []).append(ms)

    @property
    def all(self) -> list[float]:
        return [ms for values in self.latencies.values() for ms in values]


async def _login_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> int:
    """One keep-alive POST /auth/login for a name that does not exist; the reply's status."""
    body = json.dumps({"username": f"nobody{secrets.token_hex(6)}", "password": "guessing 123"})
    writer.write(
        (
            f"POST /auth/login HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body}"
        ).encode()
    )
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def flood(url: str, *, concurrency: int, seconds: float) -> Tally:
    """``concurrency`` logins for names that do not exist, always in flight.

    Plain keep-alive HTTP/1.1 on asyncio streams rather than an HTTP client library: the load
    generator shares the two cores, and its own per-request cost would otherwise be counted as
    the server's waiting time."""
    tally = Tally()
    deadline = time.monotonic() + seconds
    host, port = url.removeprefix("http://").split(":")

    async def client() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                status = await _login_once(reader, writer, host)
                tally.add(status, (time.perf_counter() - started) * 1000)
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return tally


@dataclass
class RealUser:
    signed_in: list[float] = field(default_factory=list)  # until signed in, retries included
    requests: list[float] = field(default_factory=list)  # each request on its own
    busy: int = 0


async def real_user(url: str, *, username: str, seconds: float) -> RealUser:
    """A real sign-in once a second, retried after Retry-After on 503."""
    out = RealUser()
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            while True:
                sent = time.perf_counter()
                reply = await http.post(
                    "/auth/login", json={"username": username, "password": PASSWORD}
                )
                out.requests.append((time.perf_counter() - sent) * 1000)
                if reply.status_code != 503:
                    reply.raise_for_status()
                    break
                out.busy += 1
                await asyncio.sleep(float(reply.headers.get("Retry-After", "1")))
            out.signed_in.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(1.0)
    return out


async def memory(pid: int, seconds: float) -> list[float]:
    samples = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        samples.append(rss_mib(pid))
        await asyncio.sleep(0.1)
    return samples


def start_auth(env: dict[str, str], port: int, run_dir: Path) -> subprocess.Popen[bytes]:
    subprocess.run(service("auth").migrate_command(), env=env, check=True)
    log_config = run_dir / "auth-logging.json"
    log_config.write_text(json.dumps(uvicorn_log_config("auth")))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            service("auth").app_ref,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-config",
            str(log_config),
            *uvicorn_cli("auth"),
        ],
        env=env,
        stdout=(run_dir / "auth.log").open("ab"),
        stderr=subprocess.STDOUT,
    )
    wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
    return proc


def run(args: argparse.Namespace) -> dict[str, object]:
    db = f"duochat_bench_authhash_{os.getpid()}"
    run_dir = Path(tempfile.mkdtemp(prefix="duochat-bench-auth-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DUOCHAT_ENVIRONMENT": "development",
        "DUOCHAT_DATABASE_URL": f"{MYSQL}/{db}",
        "DUOCHAT_REDIS_URL": REDIS,
        "DUOCHAT_REDIS_PREFIX": f"bench:{db}:",
        "DUOCHAT_LOGIN_MAX_FAILURES_PER_ADDRESS": "100000000",
        "PYTHONUNBUFFERED": "1",
    }
    if args.service_pythonpath:
        env["PYTHONPATH"] = args.service_pythonpath
    create_databases(MYSQL, [db])
    proc = None
    try:
        proc = start_auth(env, port, run_dir)
        username = f"real{secrets.token_hex(4)}"
        httpx.post(
            f"{url}/auth/register", json={"username": username, "password": PASSWORD}, timeout=30
        ).raise_for_status()
        idle_rss = rss_mib(proc.pid)
        queue: multiprocessing.Queue[list[float]] = multiprocessing.Queue()
        idle_probe = multiprocessing.Process(target=probe, args=(url, 5.0, queue))
        idle_probe.start()
        idle = queue.get()
        idle_probe.join()

        prober = multiprocessing.Process(target=probe, args=(url, args.seconds, queue))
        prober.start()

        async def load() -> tuple[Tally, RealUser, list[float]]:
            return await asyncio.gather(
                flood(url, concurrency=args.concurrency, seconds=args.seconds),
                real_user(url, username=username, seconds=args.seconds),
                memory(proc.pid, args.seconds),
            )

        tally, real, rss = asyncio.run(load())
        loaded = queue.get()
        prober.join()
        peak_rss = rss_mib(proc.pid, "VmHWM")
        return {
            "idle": idle,
            "loaded": loaded,
            "tally": tally,
            "real": real,
            "rss": rss,
            "idle_rss": idle_rss,
            "peak_rss": peak_rss,
        }
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(20)
        drop_databases(MYSQL, [db])


def report(args: argparse.Namespace, result: dict[str, object]) -> str:
    idle: list[float] = result["idle"]  # type: ignore[assignment]
    loaded: list[float] = result["loaded"]  # type: ignore[assignment]
    tally: Tally = result["tally"]  # type: ignore[assignment]
    real: RealUser = result["real"]  # type: ignore[assignment]
    rss: list[float] = result["rss"]  # type: ignore[assignment]
    peak_rss: float = result["peak_rss"]  # type: ignore[assignment]
    longest = max(tally.all + real.requests)
    health_p99 = percentile(loaded, 0.99)
    aims = {
        "/healthz p99 under 50 ms": health_p99 < 50,
        "peak RSS under 512 MiB": peak_rss < 512,
        "no request waits over 2 s": longest < 2000,
    }
    verdict = "; ".join(f"{aim}: {'met' if ok else 'MISSED'}" for aim, ok in aims.items())
    rows = []
    for status in sorted(tally.latencies):
        values = tally.latencies[status]
        rows.append(
            f"| {status} | {len(values)} | {percentile(values, 0.5):.1f} ms "
            f"| {percentile(values, 0.99):.1f} ms | {max(values):.1f} ms |"
        )
    total = len(tally.all)
    load_avg = os.getloadavg()[0]
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(
        [
            f"## Auth under a sign-in flood (bounded argon2) - {when}",
            "",
            f"Command: `.venv/bin/python -m bench.auth_hashing --concurrency {args.concurrency} "
            f"--seconds {args.seconds:g}`. One auth process (uvicorn, MariaDB, Redis), argon2id "
            "at the production cost (time 3, 64 MiB, 4 lanes) and the default hash slots "
            f"(CPUs and a 256 MiB budget: {min(os.cpu_count() or 1, 4)} here). "
            f"{args.concurrency} logins for names that do not exist always in flight, each "
            "client sending the next as soon as the last was answered (503 included); a real "
            "user signing in once a second, honouring Retry-After; `/healthz` probed every 50 ms "
            "from a process of its own.",
            "",
            "| flood logins by status | count | p50 | p99 | max |",
            "|---|---|---|---|---|",
            *rows,
            "",
            "| measure | value |",
            "|---|---|",
            f"| `/healthz` idle: p50 / p99 | {percentile(idle, 0.5):.1f} ms / "
            f"{percentile(idle, 0.99):.1f} ms |",
            f"| `/healthz` under the flood: p50 / p99 / max ({len(loaded)} probes) | "
            f"{percentile(loaded, 0.5):.1f} ms / {health_p99:.1f} ms / {max(loaded):.1f} ms |",
            f"| real user: one request, median / max ({len(real.requests)} requests) | "
            f"{percentile(real.requests, 0.5):.0f} ms / {max(real.requests):.0f} ms |",
            f"| real user: until signed in, Retry-After waits included, median / max "
            f"({len(real.signed_in)} sign-ins, {real.busy} busy replies on the way) | "
            f"{percentile(real.signed_in, 0.5):.0f} ms / {max(real.signed_in):.0f} ms |",
            f"| flood logins answered | {total} in {args.seconds:g} s "
            f"({total / args.seconds:.0f}/s) |",
            f"| longest wait of any one request | {longest:.0f} ms |",
            f"| RSS: idle / under the flood, max sampled / peak (VmHWM) | "
            f"{result['idle_rss']:.0f} / {max(rss):.0f} / {peak_rss:.0f} MiB |",
            "",
            f"Machine: {platform.machine()}, {os.cpu_count()} CPUs shared by the service, "
            f"MariaDB, Redis and this load generator (1-minute load average {load_avg:.1f} at "
            f"the end), Python {platform.python_version()}. Aims: {verdict}.",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--no-record", action="store_true", help="print only")
    parser.add_argument(
        "--service-pythonpath",
        default="",
        help="run the service from other sources (an older checkout's libs/common and "
        "services/auth), to compare; implies nothing is recorded",
    )
    args = parser.parse_args()
    section = report(args, run(args))
    print(section)
    if not args.no_record and not args.service_pythonpath:
        record_section("auth_hashing", section)
        print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    main()
