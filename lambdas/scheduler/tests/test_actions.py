"""start / stop / status against a moto account: the cycle, idempotency, skips and failures."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from duochat_scheduler.ecs import Capacity
from duochat_scheduler.report import Outcome, Result

if TYPE_CHECKING:
    from conftest import Env


def _outcomes(result: Result) -> dict[str, str]:
    return {r.name: str(r.outcome) for r in result.resources}


def test_stop_then_start_restores_exact_counts_and_bounds(env: Env) -> None:
    stopped = env.run("stop", source="schedule")

    assert stopped.ok and stopped.skipped is None
    assert _outcomes(stopped) == dict.fromkeys(["auth", "boards", "chat", env.DB_ID], "changed")
    assert env.capacity("auth") == Capacity(0, 0, 0)
    assert env.capacity("chat") == Capacity(0, 0, 0)
    assert env.capacity("boards") == Capacity(0)
    assert env.capacity(env.UNTAGGED) == Capacity(1)  # not tagged for the scheduler
    assert env.db_status() == "stopped"
    records = {k: json.loads(v) for k, v in env.state_parameters().items()}
    assert records[f"{env.STATE_PREFIX}/chat"]["desiredCount"] == 3
    assert records[f"{env.STATE_PREFIX}/chat"]["minCapacity"] == 2
    assert records[f"{env.STATE_PREFIX}/chat"]["maxCapacity"] == 6

    started = env.run("start", source="schedule")

    assert started.ok and not started.pending
    for name in env.SERVICES:
        assert env.capacity(name) == env.original(name), name
    assert env.db_status() == "available"
    assert env.state_parameters() == {}  # restored records are cleared


def test_double_stop_keeps_the_first_record(env: Env) -> None:
    env.run("stop")
    second = env.run("stop")

    assert second.ok
    assert set(_outcomes(second).values()) == {"unchanged"}
    record = json.loads(env.state_parameters()[f"{env.STATE_PREFIX}/auth"])
    assert (record["desiredCount"], record["minCapacity"], record["maxCapacity"]) == (2, 1, 4)

    env.run("start")
    for name in env.SERVICES:
        assert env.capacity(name) == env.original(name)


def test_double_start_is_a_no_op(env: Env) -> None:
    env.run("stop")
    env.run("start")
    env.set_capacity("chat", Capacity(5, 2, 6))  # autoscaling moved it during the day

    again = env.run("start")

    assert again.ok
    assert set(_outcomes(again).values()) == {"unchanged"}
    assert env.capacity("chat") == Capacity(5, 2, 6)


def test_start_without_a_record_falls_back_to_the_minimum(env: Env) -> None:
    env.set_capacity("auth", Capacity(0, 0, 0))
    env.set_capacity("boards", Capacity(0))

    result = env.run("start", min_desired_count=2)

    assert result.ok
    assert env.capacity("auth") == Capacity(2, 2, 2)
    assert env.capacity("boards") == Capacity(2)
    assert env.capacity("chat") == env.original("chat")  # running, no record: left alone
    assert _outcomes(result)["chat"] == "unchanged"


def test_stop_of_a_stopped_service_without_record_records_nothing(env: Env) -> None:
    env.set_capacity("boards", Capacity(0))

    env.run("stop")

    assert f"{env.STATE_PREFIX}/boards" not in env.state_parameters()
    env.run("start")
    assert env.capacity("boards") == Capacity(1)  # MIN_DESIRED_COUNT


def test_scheduled_start_skips_a_holiday_but_operator_start_does_not(env: Env) -> None:
    env.run("stop")
    env.clock.current = datetime.fromisoformat(f"{env.CHRISTMAS.isoformat()}T09:00:00+09:00")

    skipped = env.run("start", source="schedule")

    assert skipped.skipped == f"holiday {env.CHRISTMAS.isoformat()}"
    assert skipped.resources == []
    assert env.capacity("chat") == Capacity(0, 0, 0)
    assert env.db_status() == "stopped"

    manual = env.run("start", source="operator")
    assert manual.skipped is None
    assert env.capacity("chat") == env.original("chat")


def test_holiday_is_the_local_date_not_the_utc_date(env: Env) -> None:
    env.run("stop")
    # 2026-12-25 00:30 in Seoul is still 2026-12-24 in UTC.
    env.clock.current = datetime.fromisoformat("2026-12-25T00:30:00+09:00")
    assert env.run("start", source="schedule").skipped == "holiday 2026-12-25"


def test_active_keep_up_override_skips_the_scheduled_stop(env: Env) -> None:
    until = env.clock.current + timedelta(hours=3)
    env.set_override(json.dumps({"mode": "keep-up", "until": until.isoformat()}))

    result = env.run("stop", source="schedule")

    assert result.skipped is not None and result.skipped.startswith("override keep-up")
    assert env.capacity("chat") == env.original("chat")
    assert env.db_status() == "available"
    # An operator is not second-guessed by the override.
    assert env.run("stop", source="operator").skipped is None
    assert env.capacity("chat") == Capacity(0, 0, 0)


def test_expired_override_is_ignored(env: Env) -> None:
    until = env.clock.current - timedelta(minutes=1)
    env.set_override(json.dumps({"mode": "keep-up", "until": until.isoformat()}))

    result = env.run("stop", source="schedule")

    assert result.skipped is None
    assert env.capacity("chat") == Capacity(0, 0, 0)
    assert any("expired" in note for note in result.notes)


def test_active_keep_down_override_skips_the_scheduled_start(env: Env) -> None:
    env.run("stop")
    env.set_override(json.dumps({"mode": "keep-down", "until": "2026-11-26T09:00:00+09:00"}))

    assert env.run("start", source="schedule").skipped is not None
    assert env.capacity("chat") == Capacity(0, 0, 0)

    env.clock.current = datetime.fromisoformat("2026-11-26T09:00:00+09:00")  # expiry reached
    assert env.run("start", source="schedule").skipped is None
    assert env.capacity("chat") == env.original("chat")


def test_unreadable_override_is_reported_and_the_schedule_runs(env: Env) -> None:
    env.set_override("keep it up please")

    result = env.run("stop", source="schedule")

    assert result.skipped is None
    assert any(note.startswith("override ignored") for note in result.notes)


class FailingEcs:
    """Delegates to the real client, but update_service fails for one service."""

    def __init__(self, inner: Any, fail_for: str):
        self._inner = inner
        self._fail_for = fail_for

    def update_service(self, **kwargs: Any) -> Any:
        if kwargs["service"].rsplit("/", 1)[-1] == self._fail_for:
            error = {"Code": "AccessDeniedException", "Message": "denied for this test"}
            raise ClientError({"Error": error}, "UpdateService")
        return self._inner.update_service(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_one_failing_service_does_not_stop_the_others(env: Env, log_stream: io.StringIO) -> None:
    clients = replace(env.clients, ecs=FailingEcs(env.clients.ecs, fail_for="chat"))

    result = env.run("stop", clients=clients)

    assert not result.ok
    [failure] = result.failures
    assert failure.name == "chat"
    assert failure.error is not None and "AccessDeniedException" in failure.error
    assert env.capacity("auth") == Capacity(0, 0, 0)
    assert env.capacity("boards") == Capacity(0)
    assert env.db_status() == "stopped"
    assert result.to_dict()["ok"] is False

    lines = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    errors = [line for line in lines if line["level"] == "ERROR"]
    assert {"message": "resource", "name": "chat", "outcome": "failed"}.items() <= errors[0].items()
    assert errors[-1]["message"] == "action.done" and errors[-1]["failed"] == ["ecs-service/chat"]

    # The record was written before the failing update, so a retry restores it exactly.
    assert env.run("stop").ok
    env.run("start")
    assert env.capacity("chat") == env.original("chat")


def test_dry_run_changes_nothing(env: Env) -> None:
    before = {name: env.capacity(name) for name in env.SERVICES}

    result = env.run("stop", dry_run=True)

    assert result.ok and result.dry_run
    assert set(_outcomes(result).values()) == {"would-change"}
    assert {name: env.capacity(name) for name in env.SERVICES} == before
    assert env.db_status() == "available"
    assert env.state_parameters() == {}
    chat = next(r for r in result.resources if r.name == "chat")
    assert (chat.current, chat.target) == ("desired=3 min=2 max=6", "desired=0 min=0 max=0")

    env.run("stop")
    records = env.state_parameters()
    start = env.run("start", dry_run=True)
    assert set(_outcomes(start).values()) == {"would-change"}
    assert env.capacity("chat") == Capacity(0, 0, 0)
    assert env.db_status() == "stopped"
    assert env.state_parameters() == records


def test_service_arns_setting_overrides_tag_discovery(env: Env) -> None:
    result = env.run("stop", service_arns=(env.UNTAGGED,))

    assert sorted(_outcomes(result)) == [env.DB_ID, env.UNTAGGED]
    assert env.capacity(env.UNTAGGED) == Capacity(0)
    assert env.capacity("chat") == env.original("chat")


def test_stopping_an_already_stopped_database_is_fine(env: Env) -> None:
    env.clients.rds.stop_db_instance(DBInstanceIdentifier=env.DB_ID)

    result = env.run("stop")

    assert result.ok
    assert _outcomes(result)[env.DB_ID] == "unchanged"


def test_status_shows_current_state_and_records(env: Env) -> None:
    env.run("stop")
    env.set_override(json.dumps({"mode": "keep-down", "until": "2026-11-25T12:00:00+09:00"}))

    result = env.run("status")

    assert result.ok
    rows = {r.name: (r.current, r.target, r.outcome) for r in result.resources}
    assert rows["chat"] == ("desired=0 min=0 max=0", "record desired=3 min=2 max=6", Outcome.SHOWN)
    assert rows[env.DB_ID][0] == "stopped"
    assert any("keep-down" in note and "(active)" in note for note in result.notes)
