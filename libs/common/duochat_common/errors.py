"""Typed domain errors and the one handler that writes them as ``{"code", "message"}``."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class DomainError(Exception):
    """A failure the caller can act on. Subclasses fix the HTTP status."""

    status: ClassVar[int] = 400
    default_code: ClassVar[str] = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        # Each problem of a request that had several, as ``{loc, msg, type}`` (``type`` a code).
        self.details = details


class BadRequest(DomainError):
    status = 400
    default_code = "bad_request"


class Unauthorized(DomainError):
    status = 401
    default_code = "unauthorized"


class Forbidden(DomainError):
    status = 403
    default_code = "forbidden"


class NotFound(DomainError):
    status = 404
    default_code = "not_found"


class Conflict(DomainError):
    status = 409
    default_code = "conflict"


class Unprocessable(DomainError):
    status = 422
    default_code = "validation_error"


class TooManyRequests(DomainError):
    status = 429
    default_code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int = 1, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class Unavailable(DomainError):
    status = 503
    default_code = "unavailable"

    def __init__(
        self, message: str, *, retry_after: int | None = None, code: str | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class ErrorDetail(BaseModel):
    """One problem of a request that failed validation."""

    loc: list[str]
    msg: str
    type: str


class ErrorBody(BaseModel):
    """The wire shape of every error; ``details`` only on validation errors."""

    code: str
    message: str
    details: list[ErrorDetail] | None = None


_STATUS_TEXT = {
    400: "Bad request, such as a body that is not UTF-8 JSON",
    401: "Missing, invalid or expired credentials",
    403: "Not allowed for this user",
    404: "Not found",
    409: "Conflicts with the current state",
    422: "The request failed validation",
    429: "Too many requests; retry after Retry-After seconds",
    503: "A dependency is unavailable",
}
_STATUS_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}},
    503: {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait"}},
    429: {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait"}},
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for a route's error statuses, all answering ``ErrorBody``."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        spec: dict[str, Any] = {
            "model": ErrorBody,
            "description": _STATUS_TEXT.get(status, "Error"),
        }
        if status in _STATUS_HEADERS:
            spec["headers"] = _STATUS_HEADERS[status]
        out[status] = spec
    return out


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The wire shape of every error."""
    return {"code": code, "message": message, **extra}


def _jsonable_errors(errors: Any) -> list[dict[str, Any]]:
    out = []
    for err in errors:
        out.append(
            {
                "loc": [str(p) for p in err.get("loc", ())],
                "msg": str(err.get("msg", "")),
                "type": str(err.get("type", "")),
            }
        )
    return out


UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    OperationalError,
    InterfaceError,
    PoolTimeoutError,
)


def install_error_handlers(app: FastAPI) -> None:
    """Map domain errors, validation errors and stray HTTP errors to ``{"code", "message"}``."""

    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        headers = {}
        if isinstance(exc, TooManyRequests | Unavailable) and exc.retry_after is not None:
            headers["Retry-After"] = str(exc.retry_after)
        if isinstance(exc, Unauthorized):
            headers["WWW-Authenticate"] = "Bearer"
        extra = {"details": exc.details} if exc.details else {}
        return JSONResponse(error_body(exc.code, exc.message, **extra), exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = _jsonable_errors(exc.errors())
        loc = details[0]["loc"] if details else []
        msg = str(details[0]["msg"]) if details else "invalid request"
        where = ".".join(p for p in loc if p not in ("body", "query", "path"))
        message = f"{where}: {msg}" if where else msg
        return JSONResponse(error_body("validation_error", message, details=details), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "http_error"
        )
        headers = dict(exc.headers or {})
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code, headers=headers)

    # A database or Redis that does not answer (or a deadlock) is a 503 the client may retry,
    # not a crash with a text/plain 500.
    async def _unavailable(_: Request, exc: Exception) -> JSONResponse:
        log.warning("dependency unavailable: %s: %s", type(exc).__name__, exc)
        return JSONResponse(
            error_body("unavailable", "a backing service is unavailable; try again shortly"),
            503,
            headers={"Retry-After": "1"},
        )

    for infra_error in UNAVAILABLE_ERRORS:
        app.add_exception_handler(infra_error, _unavailable)

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        # Starlette re-raises after this response, so the server still logs the traceback.
        return JSONResponse(error_body("internal_error", "internal server error"), 500)
