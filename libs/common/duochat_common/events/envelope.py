"""The versioned envelope every event travels in: ``{id, type, version, occurredAt, data}``,
and ``traceparent`` (W3C) when the event was made inside a traced span: its consumers handle it
in that trace (``duochat_common.tracing``). Readers that do not know the field ignore it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class Envelope(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    type: str
    version: int = 1
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    data: dict[str, Any]
    traceparent: str | None = None

    def to_json(self) -> str:
        # Without a trace the document is exactly what it was before the field existed.
        return self.model_dump_json(
            by_alias=True, exclude=None if self.traceparent else {"traceparent"}
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> Envelope:
        return cls.model_validate_json(raw)
