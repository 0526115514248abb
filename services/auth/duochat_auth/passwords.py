"""argon2id password hashing, off the event loop, at the cost the settings ask for.

Each hash takes ``memory_kib`` of memory and a core for a fraction of a second, so only a few run
at once (``max_concurrent``, sized to the CPUs and a memory budget). A request that finds them all
busy waits at most ``queue_seconds`` for one (in order of arrival), and then gets 503 with
``Retry-After``: a flood of sign-ins slows nobody else down, nothing waits long enough to pile
up, and a client that retries at once still costs the event loop only one request per wait.

Hashes run on threads of their own at a lower CPU priority (Linux: a per-thread nice value,
which argon2's lane threads inherit), so that the event loop, which answers everything else
(``/healthz``, the 503s themselves), gets a core whenever it needs one, even with every core
busy hashing.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from duochat_common.errors import Unavailable

# OWASP's floor for argon2id; production refuses anything cheaper (tests go below it for speed).
MIN_TIME_COST = 2
MIN_MEMORY_KIB = 19 * 1024
# The hashing threads' nice value: CFS then gives a normal-priority thread (the event loop)
# about nine times their share of a contended core (bench/RESULTS.md, auth_hashing).
HASH_NICENESS = 10
T = TypeVar("T")


def _lower_priority() -> None:
    if sys.platform == "linux":
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASH_NICENESS)
        except OSError:  # a sandbox may refuse; hashing still works, just not behind the loop
            pass


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def hash_slots(*, memory_kib: int, budget_mib: int, configured: int = 0) -> int:
    """How many hashes may run at once: ``configured``, or as many as CPUs and budget allow."""
    if configured > 0:
        return configured
    return max(1, min(usable_cpus(), budget_mib * 1024 // max(memory_kib, 1)))


class Passwords:
    """Hashes and verifies passwords; one per app, built from the settings."""

    def __init__(
        self,
        *,
        time_cost: int = 3,
        memory_kib: int = 64 * 1024,
        parallelism: int = 4,
        max_concurrent: int = 2,
        queue_seconds: float = 0.5,
    ):
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism
        )
        # Verified against when the user does not exist, so both paths cost the same time.
        self._dummy_hash = self._hasher.hash("duochat-timing-equaliser")
        self.max_concurrent = max_concurrent
        self._slots = asyncio.Semaphore(max_concurrent)
        self._threads = ThreadPoolExecutor(
            max_workers=max_concurrent, thread_name_prefix="argon2", initializer=_lower_priority
        )
        self._queue_seconds = queue_seconds
        # A waiter costs nothing but a parked coroutine, and parking the excess for up to
        # ``queue_seconds`` is what keeps a flood from spinning the event loop on 503s; beyond
        # this many, the answer is 503 at once.
        self._max_waiting = max(64, 32 * max_concurrent)
        self._waiting = 0
        # Read by the metrics at scrape time.
        self.in_flight = 0
        self.rejected = 0

    @property
    def waiting(self) -> int:
        return self._waiting

    async def _acquire(self) -> None:
        if not self._slots.locked():
            await self._slots.acquire()  # free: returns at once
            return
        if self._waiting >= self._max_waiting:
            self.rejected += 1
            raise _busy()
        self._waiting += 1
        try:
            await asyncio.wait_for(self._slots.acquire(), self._queue_seconds)
        except TimeoutError:
            self.rejected += 1
            raise _busy() from None
        finally:
            self._waiting -= 1

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[Hasher]:
        """One of the hash slots, or ``Unavailable`` (503) when none frees up in time. A caller
        that reads the database for the check (sign-in) takes the slot first, so that the
        excess is refused before it holds a database connection."""
        await self._acquire()
        self.in_flight += 1
        try:
            yield Hasher(self)
        finally:
            self.in_flight -= 1
            self._slots.release()

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._threads, fn, *args)

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)

    async def hash(self, password: str) -> str:
        async with self.slot() as hasher:
            return await hasher.hash(password)

    def _verify(self, hashed: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(hashed or self._dummy_hash, password) and hashed is not None
        except (VerificationError, InvalidHashError):
            return False

    async def verify(self, hashed: str | None, password: str) -> bool:
        """True when ``password`` matches; ``hashed=None`` costs the same and returns False."""
        async with self.slot() as hasher:
            return await hasher.verify(hashed, password)


class Hasher:
    """Hashing inside a slot already taken (``Passwords.slot``)."""

    def __init__(self, passwords: Passwords) -> None:
        self._passwords = passwords

    async def hash(self, password: str) -> str:
        return await self._passwords._run(self._passwords._hasher.hash, password)

    async def verify(self, hashed: str | None, password: str) -> bool:
        return await self._passwords._run(self._passwords._verify, hashed, password)


def _busy() -> Unavailable:
    return Unavailable(
        "the server is busy checking other passwords; try again in a moment",
        retry_after=1,
        code="busy",
    )
