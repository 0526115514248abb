"""/healthz does no I/O; /readyz runs every check with a time limit and names the failures."""

from __future__ import annotations

import asyncio
import time

import httpx
from fastapi import FastAPI

from duochat_common.health import Check, health_router


async def ok() -> None:
    return None


async def broken() -> None:
    raise ConnectionRefusedError("no")


async def hangs() -> None:
    await asyncio.sleep(60)


def app_with(checks: dict[str, Check], timeout: float = 2.0) -> FastAPI:
    app = FastAPI()
    app.include_router(health_router(lambda: checks, timeout=timeout))
    return app


async def get(app: FastAPI, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get(path)


async def test_healthz_runs_no_checks() -> None:
    response = await get(app_with({"database": hangs}), "/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_when_all_answer() -> None:
    response = await get(app_with({"database": ok, "redis": ok}), "/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}


async def test_readyz_names_what_failed_and_does_not_hang() -> None:
    app = app_with({"database": hangs, "redis": broken, "other": ok}, timeout=0.2)
    started = time.monotonic()
    response = await get(app, "/readyz")
    assert time.monotonic() - started < 2
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {
            "database": "fail: TimeoutError",
            "redis": "fail: ConnectionRefusedError",
            "other": "ok",
        },
    }


async def test_health_routes_stay_out_of_the_public_schema() -> None:
    response = await get(app_with({}), "/openapi.json")
    assert "/healthz" not in response.json()["paths"]
