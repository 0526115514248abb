"""argon2id password hashing, off the event loop, at the cost the settings ask for."""

from __future__ import annotations

from anyio import to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# OWASP's floor for argon2id; production refuses anything cheaper (tests go below it for speed).
MIN_TIME_COST = 2
MIN_MEMORY_KIB = 19 * 1024


class Passwords:
    """Hashes and verifies passwords; one per app, built from the settings."""

    def __init__(self, *, time_cost: int = 3, memory_kib: int = 64 * 1024, parallelism: int = 4):
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism
        )
        # Verified against when the user does not exist, so both paths cost the same time.
        self._dummy_hash = self._hasher.hash("duochat-timing-equaliser")

    async def hash(self, password: str) -> str:
        return await to_thread.run_sync(self._hasher.hash, password)

    def _verify(self, hashed: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(hashed or self._dummy_hash, password) and hashed is not None
        except (VerificationError, InvalidHashError):
            return False

    async def verify(self, hashed: str | None, password: str) -> bool:
        """True when ``password`` matches; ``hashed=None`` costs the same and returns False."""
        return await to_thread.run_sync(self._verify, hashed, password)
