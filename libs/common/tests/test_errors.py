"""One handler writes every error as ``{"code", "message"}`` with the matching status."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, Field
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import OperationalError

from duochat_common.app import build_app
from duochat_common.errors import (
    BadRequest,
    Conflict,
    DomainError,
    ErrorBody,
    Forbidden,
    NotFound,
    TooManyRequests,
    Unauthorized,
    Unavailable,
    Unprocessable,
    error_responses,
)

ERRORS: dict[str, DomainError] = {
    "bad": BadRequest("bad input"),
    "unauthorized": Unauthorized("sign in"),
    "forbidden": Forbidden("not yours"),
    "missing": NotFound("no such board"),
    "conflict": Conflict("you applied already", code="already_applied"),
    "unprocessable": Unprocessable("too weak", code="weak_password"),
    "limited": TooManyRequests("slow down", retry_after=42),
    "unavailable": Unavailable("later"),
}

router = APIRouter()


@router.get("/raise/{name}")
async def raise_named(name: str) -> None:
    raise ERRORS[name]


class Body(BaseModel):
    title: str = Field(min_length=1, max_length=5)
    count: int


@router.post("/items", responses=error_responses(400, 422))
async def create(body: Body) -> dict[str, str]:
    return {"title": body.title}


@router.get("/redis-down")
async def redis_down() -> None:
    raise RedisConnectionError("Error 111 connecting to 127.0.0.1:1")


@router.get("/db-down")
async def db_down() -> None:
    raise OperationalError("SELECT 1", {}, Exception("2003 Can't connect"))


@router.get("/bug")
async def bug() -> None:
    raise ZeroDivisionError("oops")


@asynccontextmanager
async def nothing(_: FastAPI) -> AsyncIterator[None]:
    yield


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(title="t", routers=[router], lifespan=nothing)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


@pytest.mark.parametrize(
    ("name", "status", "code"),
    [
        ("bad", 400, "bad_request"),
        ("unauthorized", 401, "unauthorized"),
        ("forbidden", 403, "forbidden"),
        ("missing", 404, "not_found"),
        ("conflict", 409, "already_applied"),
        ("unprocessable", 422, "weak_password"),
        ("limited", 429, "rate_limited"),
        ("unavailable", 503, "unavailable"),
    ],
)
async def test_domain_errors(client: httpx.AsyncClient, name: str, status: int, code: str) -> None:
    response = await client.get(f"/raise/{name}")
    assert response.status_code == status
    assert response.json() == {"code": code, "message": ERRORS[name].message}
    ErrorBody.model_validate(response.json())


async def test_headers_of_401_and_429(client: httpx.AsyncClient) -> None:
    assert (await client.get("/raise/unauthorized")).headers["WWW-Authenticate"] == "Bearer"
    assert (await client.get("/raise/limited")).headers["Retry-After"] == "42"


async def test_validation_errors_name_the_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/items", json={"title": "far too long", "count": "x"})
    assert response.status_code == 422
    body = ErrorBody.model_validate(response.json())
    assert body.code == "validation_error"
    assert body.message.startswith("title: ")
    assert body.details is not None
    assert {tuple(d.loc) for d in body.details} == {("body", "title"), ("body", "count")}


async def test_bodies_that_are_not_json(client: httpx.AsyncClient) -> None:
    headers = {"Content-Type": "application/json"}
    broken = await client.post("/items", content=b"{nope", headers=headers)
    assert broken.status_code == 422
    assert broken.json()["code"] == "validation_error"
    undecodable = await client.post("/items", content=b"\xff\xfe\x00", headers=headers)
    assert undecodable.status_code in (400, 422)
    ErrorBody.model_validate(undecodable.json())


async def test_stray_http_errors(client: httpx.AsyncClient) -> None:
    missing = await client.get("/nope")
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"
    wrong = await client.delete("/items")
    assert wrong.status_code == 405
    assert wrong.json()["code"] == "method_not_allowed"
    assert wrong.headers["Allow"] == "POST"


@pytest.mark.parametrize("path", ["/redis-down", "/db-down"])
async def test_an_unreachable_dependency_is_503(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 503
    assert response.json()["code"] == "unavailable"
    assert response.headers["Retry-After"] == "1"
    assert "127.0.0.1" not in response.text  # no internals leak to the caller


async def test_a_bug_is_a_json_500_without_details(client: httpx.AsyncClient) -> None:
    response = await client.get("/bug")
    assert response.status_code == 500
    assert response.json() == {"code": "internal_error", "message": "internal server error"}


def test_error_responses_declare_error_body() -> None:
    declared = error_responses(401, 422, 429)
    assert set(declared) == {401, 422, 429}
    assert all(spec["model"] is ErrorBody for spec in declared.values())
    assert "Retry-After" in declared[429]["headers"]
    assert "WWW-Authenticate" in declared[401]["headers"]
