"""boards' route dependencies and the OpenAPI error descriptions its routes share."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Request

from duochat_boards.config import Settings
from duochat_boards.evidence import MessageSource
from duochat_boards.outbox import Outbox
from duochat_common.deps import from_state
from duochat_common.errors import ErrorBody
from duochat_common.ratelimit import WindowLimiter
from duochat_common.tokens import bearer_token


def _token(request: Request) -> str:
    """The caller's own access token (verified by ``CurrentUser``), to ask chat on their behalf."""
    return bearer_token(request.headers.get("authorization")) or ""


OutboxDep = Annotated[Outbox, Depends(from_state("outbox"))]
MessageSourceDep = Annotated[MessageSource, Depends(from_state("message_source"))]
TokenDep = Annotated[str, Depends(_token)]
SettingsDep = Annotated[Settings, Depends(from_state("settings"))]
ReportLimiterDep = Annotated[WindowLimiter, Depends(from_state("report_limiter"))]
# Ids are BIGINT; a larger number is a 422, not a database overflow.
BoardId = Annotated[int, Path(ge=1, le=2**63 - 1)]
UserId = Annotated[int, Path(ge=1, le=2**63 - 1)]
RoomId = Annotated[str, Path(min_length=1, max_length=64)]

_DESCRIBED = {
    400: "The body could not be read",
    401: "Not signed in, or the access token is invalid",
    403: "Signed in, but not allowed",
    404: "No such board, room or user",
    409: "The state forbids this (`already_applied`, `own_board`, `board_closed`, "
    "`room_read_only`, `user_blocked`)",
    422: "The request is malformed",
    429: "Too many requests; retry after Retry-After seconds",
    503: "A service it needs (chat, for a report's messages) did not answer; retry later",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": ErrorBody, "description": _DESCRIBED[s]} for s in (401, 422, *statuses)}


def with_body(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return errors(400, *statuses)
