"""What one Redis round trip costs the calling process in CPU: through redis-py's asyncio
client (as every service calls Redis) against a bare asyncio socket (the floor).

    .venv/bin/python -m bench.redis_roundtrip

At light load each chat message is a batch of its own, so its cost is a count of round trips
(stream reads, pipelined appends, the MySQL batch) times this figure, plus the socket work.
Prints CPU microseconds per call (``time.process_time``, this process only: Redis's own CPU is
not in it), for ``--rounds`` rounds alternating the variants, and the median of each, and
writes them to this benchmark's section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script
    sys.path.insert(0, str(ROOT))

import uvloop  # noqa: E402

from bench.results import record  # noqa: E402
from duochat_common.redis_store import create_redis  # noqa: E402
from duochat_common.testing import REDIS_URL  # noqa: E402

Call = Callable[[], Awaitable[object]]


async def cpu_per_call(call: Call, count: int) -> float:
    for _ in range(count // 10):  # warm
        await call()
    started = time.process_time()
    for _ in range(count):
        await call()
    return (time.process_time() - started) / count * 1e6


async def main_async(args: argparse.Namespace) -> str:
    client = create_redis(REDIS_URL)  # the services' own settings
    stream = f"bench:roundtrip:{uuid.uuid4().hex}"
    url = urlparse(REDIS_URL)
    reader, writer = await asyncio.open_connection(url.hostname, url.port or 6379)
    body = {"m": "x" * 300, "t": 1}

    async def raw_ping() -> None:
        writer.write(b"*1\r\n$4\r\nPING\r\n")
        await reader.readline()

    async def pipelined_xadd() -> None:
        async with client.pipeline(transaction=False) as pipe:
            pipe.xadd(stream, body, maxlen=1000, approximate=True)
            await pipe.execute()

    variants: dict[str, Call] = {
        "raw socket PING": raw_ping,
        "redis-py PING": client.ping,
        "redis-py XADD": lambda: client.xadd(stream, body, maxlen=1000, approximate=True),
        "redis-py pipeline of one XADD": pipelined_xadd,
        "redis-py XREAD": lambda: client.xread({stream: "0-0"}, count=1),
    }
    seen: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for k in range(args.rounds):
            for name, call in variants.items():
                seen[name].append(await cpu_per_call(call, args.count))
            print(f"round {k + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        await client.delete(stream)
        await client.aclose()
        writer.close()
    floor = statistics.median(seen["raw socket PING"])
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## A Redis round trip, CPU in the caller - {when}",
        "",
        f"Command: `.venv/bin/python -m bench.redis_roundtrip` ({args.rounds} rounds of "
        f"{args.count} calls, the variants alternated). Machine: {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}; Redis on this machine. CPU of "
        "the calling process per call (Redis's own is not in it): the median, and the range.",
        "",
        "| call | CPU per call | against the raw socket |",
        "|---|---|---|",
    ]
    for name, values in seen.items():
        mid = statistics.median(values)
        lines.append(
            f"| {name} | {mid:.1f} us ({min(values):.1f}-{max(values):.1f}) | {mid / floor:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    text = uvloop.run(main_async(args))
    print(text)
    if not args.no_write:
        record("redis_roundtrip", text)


if __name__ == "__main__":
    main()
