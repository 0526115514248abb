"""The production-shaped stack the benchmarks run: auth, boards, notify and N chat instances,
each its own uvicorn process (started the way ``make services`` and the images start them),
against MariaDB and Redis, with throwaway databases and a Redis namespace of their own; and
users, boards and rooms made through the public API, as people make them.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import redis.asyncio as aioredis

from duochat_common.services import service
from duochat_common.testing import REDIS_URL
from duochat_embedded.localstack import (
    create_databases,
    drop_databases,
    free_port,
    service_env,
    spawn,
    wait_ready,
)

MYSQL = "mysql://root@127.0.0.1:3306"
SERVICES = ("auth", "boards", "chat", "notify")


@dataclass
class User:
    id: int
    name: str
    token: str


@dataclass
class Room:
    room_id: str
    writer: User
    applicant: User


@dataclass
class Stack:
    run_dir: Path
    db_prefix: str = field(default_factory=lambda: f"bench_{uuid.uuid4().hex[:8]}_")
    redis_prefix: str = field(default_factory=lambda: f"b{uuid.uuid4().hex[:8]}:")
    ports: dict[str, int] = field(default_factory=lambda: {s: free_port() for s in SERVICES})
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    chats: list[tuple[int, subprocess.Popen[bytes]]] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def env(self, name: str, port: int | None = None) -> dict[str, str]:
        ports = {**self.ports, name: port or self.ports[name]}
        env = service_env(
            name,
            ports=ports,
            mysql_server=MYSQL,
            db_prefix=self.db_prefix,
            redis_url=REDIS_URL,
            redis_prefix=self.redis_prefix,
        )
        return {**env, "DUOCHAT_LOG_LEVEL": "WARNING", **self.extra_env}

    def start(self) -> None:
        """Databases, migrations, then auth, boards and notify."""
        create_databases(MYSQL, [f"{self.db_prefix}{s}" for s in SERVICES])
        migrations = [
            subprocess.Popen(service(s).migrate_command(), env=self.env(s)) for s in SERVICES
        ]
        for proc in migrations:
            if proc.wait(120) != 0:
                raise RuntimeError("migrations failed")
        for name in ("auth", "boards", "notify"):
            self.processes[name] = spawn(
                name, self.ports[name], self.env(name), self.run_dir, self.run_dir
            )
        for name in ("auth", "boards", "notify"):
            wait_ready(f"{self.url(name)}/readyz", self.processes[name])

    def scale_chat(self, n: int) -> list[int]:
        """Run exactly ``n`` chat instances (a SIGTERM drains the ones that go); their ports."""
        while len(self.chats) > n:
            _, proc = self.chats.pop()
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        while len(self.chats) < n:
            port = free_port()
            proc = spawn(
                "chat", port, self.env("chat", port), self.run_dir, self.run_dir, f"chat-{port}"
            )
            self.chats.append((port, proc))
        for port, proc in self.chats:
            wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
        time.sleep(1.5)  # every instance sees the others in the live set
        return [port for port, _ in self.chats]

    def chat_pids(self) -> list[int]:
        return [proc.pid for _, proc in self.chats]

    def service_pids(self, *names: str) -> list[int]:
        return [self.processes[n].pid for n in names]

    def stop(self) -> None:
        self.scale_chat(0)
        for proc in self.processes.values():
            proc.send_signal(signal.SIGTERM)
        for proc in self.processes.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        drop_databases(MYSQL, [f"{self.db_prefix}{s}" for s in SERVICES])

    async def drop_keys(self) -> None:
        redis = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
        keys = [k async for k in redis.scan_iter(match=f"{self.redis_prefix}*", count=1000)]
        for start in range(0, len(keys), 500):
            await redis.delete(*keys[start : start + 500])
        await redis.aclose()


async def _retrying(call: Any, *args: Any, **kwargs: Any) -> httpx.Response:
    """A public API call, again after a 429/503 with Retry-After (auth bounds its hashing)."""
    for _ in range(100):
        reply: httpx.Response = await call(*args, **kwargs)
        if reply.status_code not in (429, 503):
            return reply
        await asyncio.sleep(float(reply.headers.get("retry-after", "0.5") or 0.5))
    return reply


async def sign_up(http: httpx.AsyncClient, stack: Stack, name: str) -> User:
    password = f"bench-{uuid.uuid4().hex}"
    body = {"username": name, "password": password}
    reply = await _retrying(http.post, f"{stack.url('auth')}/auth/register", json=body)
    reply.raise_for_status()
    user_id = reply.json()["id"]
    reply = await _retrying(http.post, f"{stack.url('auth')}/auth/login", json=body)
    reply.raise_for_status()
    return User(user_id, name, reply.json()["accessToken"])


async def make_rooms(stack: Stack, count: int, *, concurrency: int = 4) -> list[Room]:
    """``count`` rooms: a writer posts a board, an applicant applies to it."""
    tag = uuid.uuid4().hex[:6]
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=60) as http:

        async def one(i: int) -> Room:
            async with gate:
                writer = await sign_up(http, stack, f"w{tag}{i}")
                applicant = await sign_up(http, stack, f"a{tag}{i}")
                board = await http.post(
                    f"{stack.url('boards')}/boards",
                    json={"title": f"bench board {i}", "content": "a benchmark room"},
                    headers={"Authorization": f"Bearer {writer.token}"},
                )
                board.raise_for_status()
                room = await http.post(
                    f"{stack.url('boards')}/boards/{board.json()['id']}/apply",
                    headers={"Authorization": f"Bearer {applicant.token}"},
                )
                room.raise_for_status()
                return Room(room.json()["roomId"], writer, applicant)

        return list(await asyncio.gather(*(one(i) for i in range(count))))


class Cpu:
    """CPU seconds of a set of processes between start() and stop()."""

    def __init__(self, pids: list[int]) -> None:
        self.procs = []
        for pid in pids:
            try:
                self.procs.append(psutil.Process(pid))
            except psutil.NoSuchProcess:  # a short-lived redis-server of some test, gone
                pass
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
    """MariaDB and Redis (the shared servers on this machine)."""
    names = {"mariadbd", "mysqld", "redis-server"}
    return [p.pid for p in psutil.process_iter(["name"]) if p.info["name"] in names]
