"""argon2id password hashing, off the event loop, at the cost the settings ask for.

Each hash takes ``memory_kib`` of memory and a core for a fraction of a second, so only a few run
at once (``max_concurrent``, sized to the CPUs and a memory budget). A request that finds them all
busy waits at most ``queue_seconds`` for one, and otherwise gets 503 with ``Retry-After`` at once:
a flood of sign-ins slows nobody else down, and nothing waits long enough to pile up.
"""

from __future__ import annotations

import asyncio
import os

from anyio import to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from duochat_common.errors import Unavailable

# OWASP's floor for argon2id; production refuses anything cheaper (tests go below it for speed).
MIN_TIME_COST = 2
MIN_MEMORY_KIB = 19 * 1024


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
        self._queue_seconds = queue_seconds
        # Waiters beyond this get 503 without waiting: each would only wait out its timeout.
        self._max_waiting = 4 * max_concurrent
        self._waiting = 0

    async def _acquire(self) -> None:
        if not self._slots.locked():
            await self._slots.acquire()  # free: returns at once
            return
        if self._waiting >= self._max_waiting:
            raise _busy()
        self._waiting += 1
        try:
            await asyncio.wait_for(self._slots.acquire(), self._queue_seconds)
        except TimeoutError:
            raise _busy() from None
        finally:
            self._waiting -= 1

    async def hash(self, password: str) -> str:
        await self._acquire()
        try:
            return await to_thread.run_sync(self._hasher.hash, password)
        finally:
            self._slots.release()

    def _verify(self, hashed: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(hashed or self._dummy_hash, password) and hashed is not None
        except (VerificationError, InvalidHashError):
            return False

    async def verify(self, hashed: str | None, password: str) -> bool:
        """True when ``password`` matches; ``hashed=None`` costs the same and returns False."""
        await self._acquire()
        try:
            return await to_thread.run_sync(self._verify, hashed, password)
        finally:
            self._slots.release()


def _busy() -> Unavailable:
    return Unavailable(
        "the server is busy checking other passwords; try again in a moment",
        retry_after=1,
        code="busy",
    )
