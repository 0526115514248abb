"""JSON logs and the request id that follows a request across services."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import APIRouter, FastAPI

from duochat_common.app import build_app
from duochat_common.logs import HEADER, JsonFormatter, request_id_headers, request_id_var

router = APIRouter()


@router.get("/echo")
async def echo() -> dict[str, object]:
    logging.getLogger("duochat.test").info("inside the request")
    return {"contextvar": request_id_var.get(), "forward": request_id_headers()}


@asynccontextmanager
async def nothing(_: FastAPI) -> AsyncIterator[None]:
    yield


def make_app() -> FastAPI:
    return build_app(title="t", routers=[router], lifespan=nothing)


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_an_incoming_request_id_is_echoed_and_forwarded() -> None:
    async with client(make_app()) as c:
        response = await c.get("/echo", headers={"X-Request-ID": "abc-123"})
    assert response.headers[HEADER] == "abc-123"
    assert response.json() == {"contextvar": "abc-123", "forward": {"X-Request-ID": "abc-123"}}


async def test_a_request_id_is_made_when_none_comes_in() -> None:
    async with client(make_app()) as c:
        first = await c.get("/echo")
        second = await c.get("/echo")
    rid = first.headers[HEADER]
    assert re.fullmatch(r"[0-9a-f]{32}", rid)
    assert first.json()["contextvar"] == rid
    assert second.headers[HEADER] != rid


async def test_error_responses_carry_the_request_id_too() -> None:
    async with client(make_app()) as c:
        response = await c.get("/nowhere", headers={"X-Request-ID": "r-404"})
    assert response.status_code == 404
    assert response.headers[HEADER] == "r-404"


async def test_an_over_long_request_id_is_cut() -> None:
    async with client(make_app()) as c:
        response = await c.get("/echo", headers={"X-Request-ID": "x" * 1000})
    assert response.headers[HEADER] == "x" * 128


async def test_outside_a_request_there_is_nothing_to_forward() -> None:
    assert request_id_var.get() == "-"
    assert request_id_headers() == {}


def _record(msg: str, **kw: object) -> logging.LogRecord:
    record = logging.LogRecord("duochat.x", logging.WARNING, __file__, 1, msg, (), None)
    for key, value in kw.items():
        setattr(record, key, value)
    return record


def test_the_json_formatter_writes_one_object_per_line() -> None:
    formatter = JsonFormatter("auth")
    token = request_id_var.set("rid-9")
    try:
        line = formatter.format(_record("hello %s", fields={"user": 7, "room": "r1"}))
    finally:
        request_id_var.reset(token)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["service"] == "auth"
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "duochat.x"
    assert entry["msg"] == "hello %s"
    assert entry["requestId"] == "rid-9"
    assert entry["user"] == 7 and entry["room"] == "r1"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["ts"])


def test_the_json_formatter_includes_the_exception() -> None:
    formatter = JsonFormatter("boards")
    try:
        raise ValueError("bad thing")
    except ValueError:
        import sys

        record = _record("failed")
        record.exc_info = sys.exc_info()
    entry = json.loads(formatter.format(record))
    assert "ValueError: bad thing" in entry["exc"]
    assert entry["requestId"] == "-"


def test_values_json_cannot_encode_are_stringified() -> None:
    entry = json.loads(JsonFormatter("x").format(_record("m", fields={"obj": object()})))
    assert entry["obj"].startswith("<object object")
