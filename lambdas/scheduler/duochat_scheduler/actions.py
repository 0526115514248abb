"""start / stop / status over every managed resource. Each resource succeeds or fails on its own."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import database as db
from .clients import AwsClients
from .config import Settings
from .ecs import Capacity, EcsServices, ServiceRef
from .logs import log_event
from .policy import Action, Override, Source, decide, parse_override
from .report import Outcome, ResourceReport, Result
from .state import StateStore

ContinueLater = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Request:
    action: Action
    source: Source = Source.OPERATOR
    dry_run: bool = False
    attempt: int = 1  # > 1 when a start was handed on to a later invocation

    def event(self) -> dict[str, Any]:
        """The Lambda event that repeats this request."""
        return {
            "action": self.action.value,
            "source": self.source.value,
            "dryRun": self.dry_run,
            "attempt": self.attempt,
        }


@dataclass(frozen=True)
class Clock:
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


class Scheduler:
    def __init__(self, *, settings: Settings, clients: AwsClients, clock: Clock | None = None):
        self._settings = settings
        self._clock = clock or Clock()
        self._services = EcsServices(
            ecs=clients.ecs,
            autoscaling=clients.autoscaling,
            cluster_arn=settings.cluster_arn,
            cluster_name=settings.cluster_name,
        )
        self._store = StateStore(ssm=clients.ssm, prefix=settings.state_parameter_prefix)
        self._db = (
            db.Database(rds=clients.rds, instance_id=settings.db_instance_id)
            if settings.db_instance_id
            else None
        )

    def run(
        self,
        request: Request,
        *,
        wait_seconds: float = 0.0,
        continue_later: ContinueLater | None = None,
    ) -> Result:
        """Run ``request``. A start waits up to ``wait_seconds`` for RDS, then hands the rest
        to ``continue_later`` (the Lambda re-invoking itself) or reports it pending."""
        s = self._settings
        result = Result(request.action.value, request.source.value, request.dry_run)
        now = self._clock.now()
        override = self._read_override(result, now)
        decision = decide(
            action=request.action,
            source=request.source,
            now=now,
            zone=s.zone,
            holidays=s.holidays,
            override=override,
        )
        if not decision.proceed:
            result.skipped = decision.reason
            return self._finish(result)
        services = self._find_services(result)
        if request.action is Action.STATUS:
            self._status(result, services, now)
        elif request.action is Action.STOP:
            for ref in services:
                self._stop_service(result, ref, request.dry_run)
            self._stop_db(result, request.dry_run)
        else:
            ready = self._start_db(result, request.dry_run, wait_seconds)
            for ref in services:
                self._start_service(result, ref, request.dry_run, deferred=not ready)
            if not ready:
                self._hand_on(result, request, continue_later)
        return self._finish(result)

    # -- discovery and status ---------------------------------------------------------------

    def _read_override(self, result: Result, now: datetime) -> Override | None:
        name = self._settings.override_parameter
        if not name:
            return None
        try:
            override = parse_override(self._store.read_raw(name), zone=self._settings.zone)
        except Exception as exc:  # a bad override (OverrideError or SSM) must not block the run
            result.notes.append(f"override ignored: {exc}")
            log_event(logging.WARNING, "override.ignored", parameter=name, error=str(exc))
            return None
        if override is not None:
            result.notes.append(f"override: {override.describe(now)}")
        return override

    def _find_services(self, result: Result) -> list[ServiceRef]:
        s = self._settings
        try:
            return self._services.find(
                tag_key=s.service_tag_key, tag_value=s.service_tag_value, arns=s.service_arns
            )
        except Exception as exc:
            self._report(
                result,
                ResourceReport("ecs-cluster", s.cluster_name, "?", "-", Outcome.FAILED),
                exc,
            )
            return []

    def _status(self, result: Result, services: list[ServiceRef], now: datetime) -> None:
        today = now.astimezone(self._settings.zone).date()
        if today in self._settings.holidays:
            result.notes.append(f"{today.isoformat()} is a holiday: the scheduled start skips")
        for ref in services:
            report = ResourceReport("ecs-service", ref.name, "?", "?", Outcome.SHOWN)
            try:
                report.current = self._services.read(ref).describe()
                record = self._store.get(ref.name)
                report.target = f"record {record.describe()}" if record else "no record"
            except Exception as exc:
                report.outcome = Outcome.FAILED
                self._report(result, report, exc)
                continue
            self._report(result, report)
        if self._db is not None:
            report = ResourceReport("rds-instance", self._db.instance_id, "?", "-", Outcome.SHOWN)
            try:
                report.current = self._db.status()
            except Exception as exc:
                report.outcome = Outcome.FAILED
                self._report(result, report, exc)
                return
            self._report(result, report)

    # -- stop --------------------------------------------------------------------------------

    def _stop_service(self, result: Result, ref: ServiceRef, dry_run: bool) -> None:
        report = ResourceReport("ecs-service", ref.name, "?", "?", Outcome.UNCHANGED)
        try:
            current = self._services.read(ref)
            report.current = current.describe()
            held = Capacity(0, 0, 0) if current.scalable else Capacity(0)
            report.target = held.describe()
            # Record only a running capacity: a second stop must not overwrite it with zeros.
            if current.running:
                report.detail = f"{_verb('record', dry_run)} {current.describe()}"
            elif (record := self._store.get(ref.name)) is not None:
                report.detail = f"keeps the record {record.describe()}"
            else:
                report.detail = "no record: start will use MIN_DESIRED_COUNT"
            if current != held:
                report.outcome = Outcome.WOULD_CHANGE if dry_run else Outcome.CHANGED
            if not dry_run:
                if current.running:
                    self._store.put(ref.name, current, at=self._clock.now())
                if current != held:
                    self._services.apply(ref, held)
        except Exception as exc:
            report.outcome = Outcome.FAILED
            self._report(result, report, exc)
            return
        self._report(result, report)

    def _stop_db(self, result: Result, dry_run: bool) -> None:
        if self._db is None:
            return
        report = ResourceReport(
            "rds-instance", self._db.instance_id, "?", db.STOPPED, Outcome.UNCHANGED
        )
        try:
            status = report.current = self._db.status()
            if status == db.AVAILABLE:
                report.outcome = Outcome.WOULD_CHANGE if dry_run else Outcome.CHANGED
                if not dry_run:
                    self._db.stop()
            elif status not in (db.STOPPED, "stopping"):
                raise RuntimeError(f"cannot stop while {status}; run stop again later")
        except Exception as exc:
            report.outcome = Outcome.FAILED
            self._report(result, report, exc)
            return
        self._report(result, report)

    # -- start -------------------------------------------------------------------------------

    def _start_db(self, result: Result, dry_run: bool, wait_seconds: float) -> bool:
        """Start RDS and wait for it; False while it is not available yet (services wait)."""
        if self._db is None:
            return True
        report = ResourceReport(
            "rds-instance", self._db.instance_id, "?", db.AVAILABLE, Outcome.UNCHANGED
        )
        ready = True
        try:
            status = report.current = self._db.status()
            if dry_run:
                if status != db.AVAILABLE:
                    report.outcome = Outcome.WOULD_CHANGE
            elif status != db.AVAILABLE:
                report.outcome = Outcome.CHANGED
                status = self._db.bring_up(
                    status,
                    wait_seconds=wait_seconds,
                    poll_seconds=self._settings.db_poll_seconds,
                    monotonic=self._clock.monotonic,
                    sleep=self._clock.sleep,
                )
                if status != db.AVAILABLE:
                    ready = False
                    report.outcome = Outcome.PENDING
                    report.detail = f"still {status}: services start once it is available"
        except Exception as exc:
            # The services still start: they report the database on /readyz, loudly.
            report.outcome = Outcome.FAILED
            self._report(result, report, exc)
            return True
        self._report(result, report)
        return ready

    def _start_service(
        self, result: Result, ref: ServiceRef, dry_run: bool, *, deferred: bool
    ) -> None:
        report = ResourceReport("ecs-service", ref.name, "?", "?", Outcome.UNCHANGED)
        try:
            current = self._services.read(ref)
            record = self._store.get(ref.name)
            target, report.detail = self._start_target(current, record)
            report.current, report.target = current.describe(), target.describe()
            changes = current != target
            if deferred:
                report.outcome = Outcome.DEFERRED
            elif dry_run:
                report.outcome = Outcome.WOULD_CHANGE if changes else Outcome.UNCHANGED
            else:
                if changes:
                    self._services.apply(ref, target)
                    report.outcome = Outcome.CHANGED
                if record is not None:
                    self._store.delete(ref.name)
        except Exception as exc:
            report.outcome = Outcome.FAILED
            self._report(result, report, exc)
            return
        self._report(result, report)

    def _start_target(self, current: Capacity, record: Capacity | None) -> tuple[Capacity, str]:
        minimum = self._settings.min_desired_count
        fallback = (
            Capacity(minimum, minimum, max(current.max_capacity or 0, minimum))
            if current.scalable
            else Capacity(minimum)
        )
        if record is not None:
            if current.scalable and not record.scalable:
                # A scalable target registered after the stop: lift it off 0/0 as well.
                record = Capacity(record.desired, fallback.min_capacity, fallback.max_capacity)
            return record, "restores the record"
        if current.running:
            return current, "already running"
        return fallback, "no record: MIN_DESIRED_COUNT"

    def _hand_on(
        self, result: Result, request: Request, continue_later: ContinueLater | None
    ) -> None:
        result.pending = True
        if request.dry_run:
            return
        if continue_later is None:
            result.notes.append("the database is still starting: run start again shortly")
            return
        db_report = next(r for r in result.resources if r.kind == "rds-instance")
        if request.attempt >= self._settings.max_start_attempts:
            db_report.outcome = Outcome.FAILED
            db_report.error = f"not available after {request.attempt} attempts"
            return
        nxt = Request(request.action, request.source, request.dry_run, request.attempt + 1)
        try:
            continue_later(nxt.event())
        except Exception as exc:
            db_report.outcome = Outcome.FAILED
            db_report.error = f"could not hand the wait on: {exc}"
            return
        result.reinvoked = True
        result.notes.append(f"handed on to attempt {nxt.attempt}")

    # -- reporting ---------------------------------------------------------------------------

    def _report(self, result: Result, report: ResourceReport, exc: Exception | None = None) -> None:
        if exc is not None:
            report.error = f"{type(exc).__name__}: {exc}"
        result.resources.append(report)
        log_event(
            logging.ERROR if report.outcome is Outcome.FAILED else logging.INFO,
            "resource",
            action=result.action,
            dryRun=result.dry_run,
            kind=report.kind,
            name=report.name,
            current=report.current,
            target=report.target,
            outcome=str(report.outcome),
            detail=report.detail,
            error=report.error,
        )

    def _finish(self, result: Result) -> Result:
        failed = result.failures
        log_event(
            logging.ERROR if failed else logging.INFO,
            "action.done",
            action=result.action,
            source=result.source,
            dryRun=result.dry_run,
            ok=result.ok,
            skipped=result.skipped,
            pending=result.pending,
            reinvoked=result.reinvoked,
            failed=[f"{r.kind}/{r.name}" for r in failed],
            notes=result.notes,
        )
        return result


def _verb(word: str, dry_run: bool) -> str:
    return f"would {word}" if dry_run else f"{word}s"
