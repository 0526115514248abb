"""The pure parts: override parsing, the skip decision, settings from the environment."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from duochat_scheduler.config import ConfigError, Settings, parse_holidays
from duochat_scheduler.policy import (
    Action,
    Override,
    OverrideError,
    OverrideMode,
    Source,
    decide,
    parse_override,
)

SEOUL = ZoneInfo("Asia/Seoul")
NOW = datetime(2026, 11, 24, 18, 0, tzinfo=SEOUL)


def _decide(action: Action, source: Source = Source.SCHEDULE, **kwargs: object) -> str | None:
    args: dict[str, object] = {"now": NOW, "zone": SEOUL, "holidays": frozenset(), "override": None}
    args.update(kwargs)
    decision = decide(action=action, source=source, **args)  # type: ignore[arg-type]
    return None if decision.proceed else decision.reason


@pytest.mark.parametrize("raw", [None, "", "  ", "{}", '{"mode": "none"}', '{"mode": ""}'])
def test_empty_overrides_mean_none(raw: str | None) -> None:
    assert parse_override(raw, zone=SEOUL) is None


def test_override_without_offset_is_read_in_the_scheduler_zone() -> None:
    override = parse_override('{"mode": "keep-up", "until": "2026-11-24T23:00"}', zone=SEOUL)
    assert override == Override(OverrideMode.KEEP_UP, datetime(2026, 11, 24, 23, tzinfo=SEOUL))


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[1]",
        '{"mode": "keep-sideways", "until": "2026-11-25T09:00:00+09:00"}',
        '{"mode": "keep-up"}',
        '{"mode": "keep-up", "until": "tomorrow"}',
    ],
)
def test_malformed_overrides_raise(raw: str) -> None:
    with pytest.raises(OverrideError):
        parse_override(raw, zone=SEOUL)


def test_keep_up_skips_only_a_scheduled_stop_until_expiry() -> None:
    active = Override(OverrideMode.KEEP_UP, datetime(2026, 11, 24, 23, tzinfo=SEOUL))
    assert _decide(Action.STOP, override=active) is not None
    assert _decide(Action.START, override=active) is None
    assert _decide(Action.STOP, Source.OPERATOR, override=active) is None
    assert _decide(Action.STOP, override=active, now=active.until) is None  # expired


def test_keep_down_skips_only_a_scheduled_start() -> None:
    active = Override(OverrideMode.KEEP_DOWN, datetime(2026, 11, 25, 12, tzinfo=SEOUL))
    assert _decide(Action.START, override=active) is not None
    assert _decide(Action.STOP, override=active) is None
    assert _decide(Action.STATUS, override=active) is None


def test_holidays_skip_only_the_scheduled_start() -> None:
    holidays = frozenset({date(2026, 11, 24)})
    assert _decide(Action.START, holidays=holidays) == "holiday 2026-11-24"
    assert _decide(Action.STOP, holidays=holidays) is None
    assert _decide(Action.START, Source.OPERATOR, holidays=holidays) is None


def test_settings_from_env_defaults() -> None:
    settings = Settings.from_env({"CLUSTER_ARN": "arn:aws:ecs:ap-northeast-2:1:cluster/duo"})
    assert settings.cluster_name == "duo"
    assert (settings.service_tag_key, settings.service_tag_value) == ("duochat:scheduled", "true")
    assert settings.timezone == "Asia/Seoul"
    assert settings.min_desired_count == 1
    assert settings.db_instance_id is None and settings.override_parameter is None


def test_settings_from_env_reads_every_variable() -> None:
    settings = Settings.from_env(
        {
            "CLUSTER_ARN": "duo",
            "SERVICE_TAG_KEY": "team",
            "SERVICE_TAG_VALUE": "chat",
            "SERVICE_ARNS": "a, b,,",
            "DB_INSTANCE_ID": "db1",
            "STATE_PARAMETER_PREFIX": "/x/state/",
            "OVERRIDE_PARAMETER": "/x/override",
            "HOLIDAYS": "2026-12-25, 2027-01-01",
            "TIMEZONE": "Europe/Berlin",
            "MIN_DESIRED_COUNT": "2",
            "MAX_START_ATTEMPTS": "3",
        }
    )
    assert settings.service_arns == ("a", "b")
    assert settings.state_parameter_prefix == "/x/state"
    assert settings.holidays == {date(2026, 12, 25), date(2027, 1, 1)}
    assert (settings.min_desired_count, settings.max_start_attempts) == (2, 3)
    assert settings.zone == ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"CLUSTER_ARN": "duo", "TIMEZONE": "Mars/Olympus"},
        {"CLUSTER_ARN": "duo", "MIN_DESIRED_COUNT": "-1"},
        {"CLUSTER_ARN": "duo", "MIN_DESIRED_COUNT": "one"},
        {"CLUSTER_ARN": "duo", "HOLIDAYS": "25/12/2026"},
    ],
)
def test_bad_settings_fail_fast(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        Settings.from_env(env)


def test_parse_holidays_ignores_blanks() -> None:
    assert parse_holidays(" 2026-05-05 ,") == {date(2026, 5, 5)}
