"""Structured JSON logs: one object per line, with the event's fields at the top level."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

LOGGER_NAME = "duochat_scheduler"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(stream: IO[str] | None = None, level: int = logging.INFO) -> logging.Logger:
    """Send the scheduler's logs, as JSON, to ``stream`` (stdout by default) and nowhere else.

    Lambda's runtime puts its own text handler on the root logger; not propagating keeps
    every line pure JSON, so CloudWatch Logs Insights can query the fields.
    """
    logger = logging.getLogger(LOGGER_NAME)
    for old in list(logger.handlers):
        logger.removeHandler(old)
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return logger


def log_event(level: int, message: str, **fields: Any) -> None:
    """Log ``message`` with ``fields`` as top-level JSON keys."""
    logging.getLogger(LOGGER_NAME).log(level, message, extra={"fields": fields})
