"""auth: users, credentials, refresh tokens and the token-signing key."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from opentelemetry.trace import TracerProvider
from redis.asyncio import Redis
from sqlalchemy import select

from duochat_auth import service
from duochat_auth.config import Settings
from duochat_auth.keys import KeyRing, load_key_ring
from duochat_auth.metrics import CLOUDWATCH, AuthMetrics
from duochat_auth.models import User
from duochat_auth.passwords import Passwords, hash_slots
from duochat_auth.ratelimit import LoginLimiter, WindowLimiter
from duochat_auth.routes import router
from duochat_common.app import Lifespan, build_app
from duochat_common.db import Database
from duochat_common.errors import Conflict
from duochat_common.resources import opened
from duochat_common.telemetry import Telemetry
from duochat_common.tokens import JwksFetcher, TokenVerifier, verifier_for

log = logging.getLogger(__name__)
DEMO_ACCOUNTS = ("happydaddy", "angrydaddy")
DEMO_PASSWORD = "1234"  # noqa: S105 - the embedded mode's documented demo password


async def seed_demo_accounts(db: Database, passwords: Passwords) -> None:
    """Create the demo accounts if missing (embedded mode only; production refuses the flag)."""
    async with db.session() as session:
        for name in DEMO_ACCOUNTS:
            if await session.scalar(select(User.id).where(User.canonical == name)) is None:
                try:
                    await service.create_user(
                        session=session, passwords=passwords, username=name, password=DEMO_PASSWORD
                    )
                except Conflict:
                    continue  # another instance seeded it a moment ago
                log.info("seeded demo account %s", name)


def login_limiter(redis: Redis, settings: Settings, *, prefix: str | None = None) -> LoginLimiter:
    """The failed-sign-in limiter the settings ask for (``prefix`` overrides the namespace)."""
    return LoginLimiter(
        redis,
        prefix=settings.redis_prefix if prefix is None else prefix,
        free_failures=settings.login_max_failures_per_name,
        per_address=settings.login_max_failures_per_address,
        window_seconds=settings.login_failure_window_seconds,
        base_delay=settings.login_delay_base_seconds,
        max_delay=settings.login_delay_max_seconds,
    )


def _passwords(settings: Settings) -> Passwords:
    """The bounded argon2id hasher the settings ask for."""
    return Passwords(
        time_cost=settings.password_time_cost,
        memory_kib=settings.password_memory_kib,
        parallelism=settings.password_parallelism,
        max_concurrent=hash_slots(
            memory_kib=settings.password_memory_kib,
            budget_mib=settings.password_memory_budget_mib,
            configured=settings.password_max_concurrent,
        ),
        queue_seconds=settings.password_queue_seconds,
    )


def _own_keys(keys: KeyRing) -> JwksFetcher:
    """auth verifies its own tokens against its key ring, without a round trip to itself."""

    async def fetch() -> dict[str, Any]:
        return keys.jwks()

    return fetch


def _lifespan(
    settings: Settings, verifier: TokenVerifier | None, database: Database | None
) -> Lifespan:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with opened(app.state, settings, database=database) as (db, redis):
            async with db.session() as session:
                keys = await load_key_ring(session=session, configured_pem=settings.jwt_private_key)
            passwords = _passwords(settings)
            app.state.keys = keys
            app.state.verifier = verifier or verifier_for(settings, fetch=_own_keys(keys))
            app.state.limiter = login_limiter(redis, settings)
            app.state.signups = WindowLimiter(
                redis,
                prefix=settings.redis_prefix,
                name="auth:register",
                limit=settings.register_max_per_address,
                window_seconds=settings.register_window_seconds,
            )
            app.state.passwords = passwords
            if settings.demo_accounts:
                await seed_demo_accounts(db, passwords)
            try:
                yield
            finally:
                passwords.close()

    return lifespan


def create_app(
    settings: Settings | None = None,
    *,
    verifier: TokenVerifier | None = None,
    database: Database | None = None,
    tracer_provider: TracerProvider | None = None,
) -> FastAPI:
    """The auth app. ``verifier`` replaces the one that reads auth's own key ring, ``database``
    the one built from ``settings`` (a given one stays open when the app stops: its owner
    disposes of it), ``tracer_provider`` the configured trace export."""
    settings = settings or Settings()
    telemetry = Telemetry.of("auth", settings, tracer_provider=tracer_provider)
    telemetry.export_to_cloudwatch(*CLOUDWATCH)
    app = build_app(
        title="duochat auth",
        routers=[router],
        lifespan=_lifespan(settings, verifier, database),
        telemetry=telemetry,
    )
    app.state.settings = settings
    app.state.auth_metrics = AuthMetrics(
        telemetry.metrics, lambda: getattr(app.state, "passwords", None)
    )
    return app
