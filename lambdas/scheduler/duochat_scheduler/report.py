"""What an action did (or would do) to each resource, as data, JSON and a text table."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    WOULD_CHANGE = "would-change"
    DEFERRED = "deferred"  # waits for the database; a later invocation does it
    PENDING = "pending"  # the database is on its way up
    FAILED = "failed"
    SHOWN = "-"  # status only


@dataclass
class ResourceReport:
    kind: str  # "ecs-service" | "rds-instance" | "ecs-cluster"
    name: str
    current: str
    target: str
    outcome: Outcome
    detail: str = ""
    error: str | None = None


@dataclass
class Result:
    action: str
    source: str
    dry_run: bool
    skipped: str | None = None
    pending: bool = False
    reinvoked: bool = False
    notes: list[str] = field(default_factory=list)
    resources: list[ResourceReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(r.outcome is Outcome.FAILED for r in self.resources)

    @property
    def failures(self) -> list[ResourceReport]:
        return [r for r in self.resources if r.outcome is Outcome.FAILED]

    def to_dict(self) -> dict[str, Any]:
        """The JSON-friendly shape returned by the Lambda (camelCase keys)."""
        return {
            "action": self.action,
            "source": self.source,
            "dryRun": self.dry_run,
            "ok": self.ok,
            "skipped": self.skipped,
            "pending": self.pending,
            "reinvoked": self.reinvoked,
            "notes": list(self.notes),
            "resources": [
                {k: (str(v) if isinstance(v, StrEnum) else v) for k, v in asdict(r).items()}
                for r in self.resources
            ],
        }


_COLUMNS = ("RESOURCE", "KIND", "CURRENT", "TARGET", "OUTCOME")


def render_table(result: Result) -> str:
    """Render a result as a plain-text table with a one-line header and any notes below."""
    mode = "dry run" if result.dry_run else "live"
    lines = [f"{result.action} ({mode}, source={result.source})"]
    if result.skipped:
        lines.append(f"skipped: {result.skipped}")
    rows = [(r.name, r.kind, r.current, r.target, _outcome_text(r)) for r in result.resources]
    if rows:
        widths = [max(len(row[i]) for row in [_COLUMNS, *rows]) for i in range(len(_COLUMNS))]
        for row in [_COLUMNS, *rows]:
            cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            lines.append("  ".join(cells).rstrip())
    lines.extend(f"note: {note}" for note in result.notes)
    for r in result.resources:
        if r.detail:
            lines.append(f"{r.name}: {r.detail}")
    return "\n".join(lines)


def _outcome_text(r: ResourceReport) -> str:
    if r.outcome is Outcome.FAILED and r.error:
        return f"failed: {r.error}"
    return str(r.outcome)
