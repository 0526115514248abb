"""The Lambda entry point: parse the event, build the scheduler from the environment, run it.

A start waits for RDS inside this invocation while it can. When the invocation's time runs
low, it re-invokes the function asynchronously with ``attempt`` + 1 (at most
MAX_START_ATTEMPTS invocations), and that invocation restores the services.
"""

from __future__ import annotations

import json
from typing import Any

from . import logs
from .actions import Request, Scheduler
from .clients import AwsClients
from .config import Settings
from .policy import Action, Source

# Leave this much of the invocation for restoring the services after the wait.
_RESERVE_SECONDS = 90.0


class BadEvent(ValueError):
    """The event is not a scheduler request."""


def parse_event(event: Any) -> Request:
    """Turn ``{"action", "dryRun"?, "source"?, "attempt"?}`` into a Request."""
    if not isinstance(event, dict):
        raise BadEvent("event must be a JSON object")
    try:
        action = Action(str(event.get("action")))
        source = Source(str(event.get("source") or Source.OPERATOR.value))
    except ValueError as exc:
        raise BadEvent(str(exc)) from exc
    dry_run = event.get("dryRun", False)
    attempt = event.get("attempt", 1)
    if not isinstance(dry_run, bool) or not isinstance(attempt, int) or attempt < 1:
        raise BadEvent("dryRun must be a boolean and attempt a positive integer")
    return Request(action=action, source=source, dry_run=dry_run, attempt=attempt)


def handler(event: Any, context: Any, *, clients: AwsClients | None = None) -> dict[str, Any]:
    logs.configure()
    request = parse_event(event)
    aws = clients or AwsClients.create()
    scheduler = Scheduler(settings=Settings.from_env(), clients=aws)
    remaining = context.get_remaining_time_in_millis() / 1000 if context is not None else 0.0

    def continue_later(next_event: dict[str, Any]) -> None:
        aws.lambda_.invoke(
            FunctionName=context.invoked_function_arn,
            InvocationType="Event",
            Payload=json.dumps(next_event).encode(),
        )

    result = scheduler.run(
        request,
        wait_seconds=max(0.0, remaining - _RESERVE_SECONDS),
        continue_later=continue_later if context is not None else None,
    )
    return result.to_dict()
