"""The RDS instance: read its status, start it, stop it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

AVAILABLE = "available"
STOPPED = "stopped"
# States an instance only leaves by someone's hand; waiting for them is pointless.
STUCK = frozenset(
    {
        "failed",
        "deleting",
        "inaccessible-encryption-credentials",
        "inaccessible-encryption-credentials-recoverable",
        "incompatible-network",
        "incompatible-option-group",
        "incompatible-parameters",
        "incompatible-restore",
        "insufficient-capacity",
        "restore-error",
        "storage-full",
    }
)


class Database:
    """Thin operations over the RDS client for one DB instance."""

    def __init__(self, *, rds: Any, instance_id: str):
        self._rds = rds
        self.instance_id = instance_id

    def status(self) -> str:
        reply = self._rds.describe_db_instances(DBInstanceIdentifier=self.instance_id)
        return str(reply["DBInstances"][0]["DBInstanceStatus"])

    def start(self) -> None:
        self._rds.start_db_instance(DBInstanceIdentifier=self.instance_id)

    def stop(self) -> None:
        self._rds.stop_db_instance(DBInstanceIdentifier=self.instance_id)

    def bring_up(
        self,
        status: str,
        *,
        wait_seconds: float,
        poll_seconds: float,
        monotonic: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> str:
        """Start the instance if it is stopped (after a stop in progress finishes), then poll
        until it is available or ``wait_seconds`` run out; return the last status seen."""
        deadline = monotonic() + wait_seconds
        started = False
        while True:
            if status == AVAILABLE:
                return status
            if status in STUCK:
                raise RuntimeError(f"instance is {status}")
            if status == STOPPED and not started:
                self.start()
                started = True
                status = self.status()
                continue
            if monotonic() + poll_seconds > deadline:
                return status
            sleep(poll_seconds)
            status = self.status()
