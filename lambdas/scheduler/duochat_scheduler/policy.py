"""Whether an action runs now: holidays and operator overrides. Pure: the caller passes the time."""

from __future__ import annotations

import json
from collections.abc import Set
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from enum import StrEnum


class Action(StrEnum):
    START = "start"
    STOP = "stop"
    STATUS = "status"


class Source(StrEnum):
    SCHEDULE = "schedule"
    OPERATOR = "operator"


class OverrideMode(StrEnum):
    KEEP_UP = "keep-up"
    KEEP_DOWN = "keep-down"


class OverrideError(ValueError):
    """The override parameter holds something we cannot read."""


@dataclass(frozen=True)
class Override:
    mode: OverrideMode
    until: datetime

    def is_active(self, now: datetime) -> bool:
        return now < self.until

    def describe(self, now: datetime) -> str:
        state = "active" if self.is_active(now) else "expired"
        return f"{self.mode.value} until {self.until.isoformat()} ({state})"


@dataclass(frozen=True)
class Decision:
    proceed: bool
    reason: str = ""


def parse_override(raw: str | None, *, zone: tzinfo) -> Override | None:
    """Parse the override parameter's JSON value; empty, ``{}`` or mode "none" mean no override.

    An ``until`` without a UTC offset is read in the scheduler's time zone.
    """
    if raw is None or not raw.strip():
        return None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise OverrideError(f"override is not JSON: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise OverrideError("override must be a JSON object")
    mode = data.get("mode")
    if not data or mode in (None, "", "none"):
        return None
    try:
        parsed_mode = OverrideMode(mode)
    except ValueError as exc:
        raise OverrideError(f"override mode must be keep-up or keep-down, got {mode!r}") from exc
    until_raw = data.get("until")
    if not isinstance(until_raw, str):
        raise OverrideError("override needs an 'until' ISO 8601 timestamp")
    try:
        until = datetime.fromisoformat(until_raw)
    except ValueError as exc:
        raise OverrideError(f"override 'until' is not ISO 8601: {until_raw!r}") from exc
    if until.tzinfo is None:
        until = until.replace(tzinfo=zone)
    return Override(mode=parsed_mode, until=until)


def decide(
    *,
    action: Action,
    source: Source,
    now: datetime,
    zone: tzinfo,
    holidays: Set[date],
    override: Override | None,
) -> Decision:
    """Decide whether ``action`` runs at ``now`` (an aware datetime).

    Operators are never second-guessed. Scheduled runs honour an active override
    (keep-up skips a stop, keep-down skips a start) and skip the start on a holiday.
    """
    if action is Action.STATUS or source is Source.OPERATOR:
        return Decision(proceed=True)
    if override is not None and override.is_active(now):
        if action is Action.STOP and override.mode is OverrideMode.KEEP_UP:
            return Decision(False, f"override keep-up until {override.until.isoformat()}")
        if action is Action.START and override.mode is OverrideMode.KEEP_DOWN:
            return Decision(False, f"override keep-down until {override.until.isoformat()}")
    today = now.astimezone(zone).date()
    if action is Action.START and today in holidays:
        return Decision(False, f"holiday {today.isoformat()}")
    return Decision(proceed=True)
