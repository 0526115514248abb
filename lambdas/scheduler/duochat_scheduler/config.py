"""Scheduler settings, read from environment variables when an action runs."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class ConfigError(ValueError):
    """A setting is missing or malformed."""


@dataclass(frozen=True)
class Settings:
    cluster_arn: str
    service_tag_key: str = "duochat:scheduled"
    service_tag_value: str = "true"
    # When set, these services are managed and tag discovery is skipped.
    service_arns: tuple[str, ...] = ()
    db_instance_id: str | None = None
    state_parameter_prefix: str = "/duochat/scheduler/state"
    override_parameter: str | None = None
    holidays: frozenset[date] = field(default_factory=frozenset)
    timezone: str = "Asia/Seoul"
    min_desired_count: int = 1
    # How many invocations a start may span while RDS comes up (see handler.py).
    max_start_attempts: int = 4
    db_poll_seconds: float = 15.0

    @property
    def cluster_name(self) -> str:
        """The cluster's short name, whether CLUSTER_ARN holds an ARN or a name."""
        return self.cluster_arn.rsplit("/", 1)[-1]

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from environment variables (os.environ by default)."""
        env = os.environ if environ is None else environ
        cluster_arn = env.get("CLUSTER_ARN", "").strip()
        if not cluster_arn:
            raise ConfigError("CLUSTER_ARN is required")
        timezone = env.get("TIMEZONE", "").strip() or "Asia/Seoul"
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(f"TIMEZONE {timezone!r} is not a known time zone") from exc
        return cls(
            cluster_arn=cluster_arn,
            service_tag_key=env.get("SERVICE_TAG_KEY", "").strip() or "duochat:scheduled",
            service_tag_value=env.get("SERVICE_TAG_VALUE", "").strip() or "true",
            service_arns=_split(env.get("SERVICE_ARNS", "")),
            db_instance_id=env.get("DB_INSTANCE_ID", "").strip() or None,
            state_parameter_prefix=(
                env.get("STATE_PARAMETER_PREFIX", "").strip() or "/duochat/scheduler/state"
            ).rstrip("/"),
            override_parameter=env.get("OVERRIDE_PARAMETER", "").strip() or None,
            holidays=parse_holidays(env.get("HOLIDAYS", "")),
            timezone=timezone,
            min_desired_count=_int(env, "MIN_DESIRED_COUNT", 1, minimum=0),
            max_start_attempts=_int(env, "MAX_START_ATTEMPTS", 4, minimum=1),
        )


def parse_holidays(raw: str) -> frozenset[date]:
    """Parse a comma-separated list of YYYY-MM-DD dates."""
    days = set()
    for item in _split(raw):
        try:
            days.add(date.fromisoformat(item))
        except ValueError as exc:
            raise ConfigError(f"HOLIDAYS entry {item!r} is not a YYYY-MM-DD date") from exc
    return frozenset(days)


def _split(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value
