"""``/healthz`` (liveness, no I/O) and ``/readyz`` (200 only when every dependency answers)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.datastructures import State

from duochat_common.redis_store import ping

Check = Callable[[], Awaitable[object]]


def resource_checks(state: State) -> dict[str, Check]:
    """The readiness checks of every service: the database and the Redis its lifespan opened
    (``state.db``, ``state.redis``), looked up at each check; one not open yet fails."""

    async def database() -> None:
        await state.db.ping()

    async def redis() -> None:
        await ping(state.redis)

    return {"database": database, "redis": redis}


async def _run(check: Check, limit: float) -> str:
    try:
        async with asyncio.timeout(limit):
            await check()
    except Exception as exc:
        return f"fail: {type(exc).__name__}"
    return "ok"


def health_router(checks: Callable[[], Mapping[str, Check]], *, timeout: float = 2.0) -> APIRouter:
    """``checks`` is called per request so that it sees the resources the lifespan opened."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        named = dict(checks())
        results = await asyncio.gather(*(_run(c, timeout) for c in named.values()))
        report = dict(zip(named, results, strict=True))
        ready = all(r == "ok" for r in report.values())
        return JSONResponse(
            {"status": "ready" if ready else "unavailable", "checks": report},
            status_code=200 if ready else 503,
        )

    return router
