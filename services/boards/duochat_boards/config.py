"""boards' settings."""

from __future__ import annotations

from pydantic import Field

from duochat_common.settings import ServiceSettings


class Settings(ServiceSettings):
    database_url: str = "sqlite:///./data/boards.db"
    # The relay re-publishes outbox events that a request committed but could not hand to Redis
    # (Redis down, process killed between commit and publish). Seconds between its sweeps;
    # 0 turns the relay off (tests that drive it by hand).
    outbox_relay_seconds: float = 1.0
    # A request publishes its own events right after its commit; the relay leaves events younger
    # than this alone, so that the two rarely publish the same event twice.
    outbox_grace_seconds: float = 5.0
    # Published outbox rows are kept this long (for audit and replay), then pruned.
    outbox_retention_seconds: int = 7 * 86400
    # GET /boards/rooms lists a read-only room (rejected, closed, left, blocked) this many days
    # after it ended, unless asked for every room (ended=include) or none (ended=exclude).
    ended_rooms_listed_days: int = Field(default=30, ge=0, le=3650)
    # Where boards asks chat for the messages a report names (chat's history API).
    chat_url: str = "http://127.0.0.1:8000"
    # Reports one user may file per window (429 too_many_reports beyond).
    reports_per_window: int = Field(default=5, ge=1)
    report_window_seconds: int = Field(default=3600, ge=1, le=7 * 86400)
