"""The Lambda entry point, the wait for RDS handed on to a second invocation, and the CLI."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import pytest

from duochat_scheduler.__main__ import main
from duochat_scheduler.actions import Request
from duochat_scheduler.ecs import Capacity
from duochat_scheduler.handler import BadEvent, handler, parse_event
from duochat_scheduler.policy import Action, Source

if TYPE_CHECKING:
    from conftest import Env


@dataclass
class FakeContext:
    remaining_ms: int = 900_000
    invoked_function_arn: str = "arn:aws:lambda:ap-northeast-2:123456789012:function:scheduler"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@dataclass
class RecordingLambda:
    """Stands in for the Lambda client: records asynchronous self-invocations."""

    invocations: list[dict[str, Any]] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        self.invocations.append(kwargs)
        return {"StatusCode": 202}

    def get_function_configuration(self, **kwargs: Any) -> dict[str, Any]:
        return {"Environment": {"Variables": self.environment}}


class SlowRds:
    """RDS that reports 'starting' for a number of polls after a start, then 'available'."""

    def __init__(self, inner: Any, polls: int):
        self._inner = inner
        self._polls = polls
        self._starting = False

    def start_db_instance(self, **kwargs: Any) -> Any:
        self._starting = True
        return self._inner.start_db_instance(**kwargs)

    def describe_db_instances(self, **kwargs: Any) -> Any:
        reply = self._inner.describe_db_instances(**kwargs)
        if self._starting and self._polls > 0:
            self._polls -= 1
            reply["DBInstances"][0]["DBInstanceStatus"] = "starting"
        return reply

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _lambda_environment(env: Env) -> dict[str, str]:
    return {
        "CLUSTER_ARN": env.cluster_arn,
        "DB_INSTANCE_ID": env.DB_ID,
        "STATE_PARAMETER_PREFIX": env.STATE_PREFIX,
        "OVERRIDE_PARAMETER": env.OVERRIDE,
        "HOLIDAYS": env.CHRISTMAS.isoformat(),
    }


@pytest.fixture
def lambda_env(env: Env, monkeypatch: pytest.MonkeyPatch) -> Env:
    for name, value in _lambda_environment(env).items():
        monkeypatch.setenv(name, value)
    return env


def test_parse_event() -> None:
    assert parse_event({"action": "stop", "dryRun": True, "source": "schedule"}) == Request(
        Action.STOP, Source.SCHEDULE, dry_run=True
    )
    assert parse_event({"action": "status"}).source is Source.OPERATOR
    bad_events: list[Any] = [
        None,
        {},
        {"action": "reboot"},
        {"action": "stop", "dryRun": "yes"},
        {"action": "start", "attempt": 0},
        {"action": "stop", "source": "cron"},
    ]
    for bad in bad_events:
        with pytest.raises(BadEvent):
            parse_event(bad)


def test_handler_reads_settings_from_the_environment_at_call_time(
    lambda_env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    event = {"action": "stop", "source": "schedule"}
    out = handler(event, FakeContext(), clients=lambda_env.clients)

    assert out["ok"] is True and out["action"] == "stop" and out["dryRun"] is False
    assert {r["name"]: r["outcome"] for r in out["resources"]} == dict.fromkeys(
        ["auth", "boards", "chat", lambda_env.DB_ID], "changed"
    )
    assert lambda_env.capacity("chat") == Capacity(0, 0, 0)
    json.dumps(out)  # the result is JSON-serialisable
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[-1]["message"] == "action.done" and lines[-1]["ok"] is True


def test_start_hands_the_wait_for_rds_to_a_second_invocation(lambda_env: Env) -> None:
    env = lambda_env
    env.run("stop")
    recorder = RecordingLambda()
    slow = replace(env.clients, rds=SlowRds(env.clients.rds, polls=1000), lambda_=recorder)
    # 100 s left: 10 s of waiting after the 90 s reserve, then hand on.
    first = handler({"action": "start", "source": "schedule"}, FakeContext(100_000), clients=slow)

    assert first["pending"] is True and first["reinvoked"] is True and first["ok"] is True
    outcomes = {r["name"]: r["outcome"] for r in first["resources"]}
    assert outcomes.pop(env.DB_ID) == "pending"
    assert outcomes == dict.fromkeys(["auth", "boards", "chat"], "deferred")
    assert env.capacity("chat") == Capacity(0, 0, 0)  # services wait for the database
    [call] = recorder.invocations
    assert call["InvocationType"] == "Event"
    assert call["FunctionName"] == FakeContext.invoked_function_arn
    next_event = json.loads(call["Payload"])
    assert next_event == {"action": "start", "source": "schedule", "dryRun": False, "attempt": 2}

    # The second invocation finds the database available and restores the services.
    second = handler(next_event, FakeContext(), clients=replace(env.clients, lambda_=recorder))
    assert second["ok"] is True and second["pending"] is False
    assert env.capacity("chat") == env.original("chat")
    assert len(recorder.invocations) == 1


def test_start_gives_up_after_max_attempts(lambda_env: Env) -> None:
    env = lambda_env
    env.run("stop")
    recorder = RecordingLambda()
    slow = replace(env.clients, rds=SlowRds(env.clients.rds, polls=1000), lambda_=recorder)

    out = handler({"action": "start", "attempt": 4}, FakeContext(100_000), clients=slow)

    assert out["ok"] is False and recorder.invocations == []
    db = next(r for r in out["resources"] if r["kind"] == "rds-instance")
    assert db["error"] == "not available after 4 attempts"


def test_start_waits_within_one_invocation_when_rds_is_quick(env: Env) -> None:
    env.run("stop")
    slow = replace(env.clients, rds=SlowRds(env.clients.rds, polls=3))

    result = env.scheduler(clients=slow).run(Request(Action.START), wait_seconds=600)

    assert result.ok and not result.pending
    assert env.clock.slept == [15.0, 15.0, 15.0]
    assert env.capacity("chat") == env.original("chat")


def test_cli_status_prints_a_table_of_every_resource(env: Env) -> None:
    env.run("stop")
    out = io.StringIO()

    code = main(["status"], clients=env.clients, environ=_lambda_environment(env), out=out)

    assert code == 0
    lines = out.getvalue().splitlines()
    assert lines[0] == "status (live, source=operator)"
    assert lines[1].split() == ["RESOURCE", "KIND", "CURRENT", "TARGET", "OUTCOME"]
    rows = {line.split()[0]: line for line in lines[2:6]}
    assert set(rows) == {"auth", "boards", "chat", env.DB_ID}
    assert "desired=0 min=0 max=0" in rows["chat"]
    assert "record desired=3 min=2 max=6" in rows["chat"]
    assert "stopped" in rows[env.DB_ID]


def test_cli_dry_run_start_shows_current_and_target(env: Env) -> None:
    env.run("stop")
    recorder = RecordingLambda(environment=_lambda_environment(env))
    clients = replace(env.clients, lambda_=recorder)
    out = io.StringIO()

    code = main(["start", "--dry-run", "--function", "scheduler"], clients=clients, out=out)

    assert code == 0
    text = out.getvalue()
    assert text.startswith("start (dry run, source=operator)")
    chat = next(line for line in text.splitlines() if line.startswith("chat "))
    assert chat.split()[2:] == "desired=0 min=0 max=0 desired=3 min=2 max=6 would-change".split()
    assert env.capacity("chat") == Capacity(0, 0, 0)


def test_cli_reports_a_configuration_error(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status"], clients=env.clients, environ={}) == 2
    assert "CLUSTER_ARN is required" in capsys.readouterr().err
