"""auth's own metrics: sign-ins by outcome, and the password hashes in flight, waiting for a
slot, and refused (503) because every slot stayed busy.

A healthy auth has few hashes waiting and none refused; refusals mean a flood of sign-ins (or
too few hash slots for the traffic: ``DUOCHAT_PASSWORD_MAX_CONCURRENT``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import Counter

from duochat_auth.passwords import Passwords
from duochat_common.errors import TooManyRequests, Unauthorized, Unavailable
from duochat_common.metrics import Metrics, Read, Readings

OUTCOMES = ("success", "invalid_credentials", "rate_limited", "busy", "error")
CLOUDWATCH = ("duochat_auth_logins", "duochat_auth_hashes_rejected")


class AuthMetrics:
    def __init__(self, metrics: Metrics, passwords: Callable[[], Passwords | None]) -> None:
        self.logins = Counter(
            "duochat_auth_logins",
            "Sign-in attempts, by outcome",
            ["outcome"],
            registry=metrics.registry,
        )
        for outcome in OUTCOMES:
            self.logins.labels(outcome)
        self._passwords = passwords
        metrics.registry.register(Readings(self._readings))

    def _readings(self) -> Iterable[Read]:
        passwords = self._passwords()
        if passwords is None:
            return
        yield Read(
            "duochat_auth_hashes_in_flight",
            "Password hashes running now",
            lambda: passwords.in_flight,
        )
        yield Read(
            "duochat_auth_hashes_waiting",
            "Password checks waiting for a hash slot",
            lambda: passwords.waiting,
        )
        yield Read(
            "duochat_auth_hashes_rejected",
            "Password checks refused (503) because no hash slot freed up in time",
            lambda: passwords.rejected,
            kind="counter",
        )

    @contextlib.contextmanager
    def login(self) -> Iterator[None]:
        """Count one sign-in by how it ended."""
        outcome = "error"
        try:
            yield
            outcome = "success"
        except Unauthorized:
            outcome = "invalid_credentials"
            raise
        except TooManyRequests:
            outcome = "rate_limited"
            raise
        except Unavailable:
            outcome = "busy"
            raise
        finally:
            self.logins.labels(outcome).inc()
