"""Build the embedded app: every service of the route table, and the web app, in one process."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from fastapi import FastAPI
from starlette.types import ASGIApp

from duochat_common.errors import install_error_handlers
from duochat_common.health import Check, health_router, resource_checks
from duochat_common.metrics import labelled_metrics_router
from duochat_common.services import SERVICES, ServiceSpec
from duochat_common.settings import ServiceSettings
from duochat_embedded.dispatch import RouteTableDispatcher
from duochat_embedded.web import SecurityHeaders, web_app

MEMORY_REDIS = "memory://embedded"


def service_settings(spec: ServiceSpec, *, data_dir: Path, base_url: str) -> ServiceSettings:
    """The settings one service gets in embedded mode: SQLite under ``data_dir``, memory Redis."""
    return spec.settings(
        environment="development",
        database_url=f"sqlite:///{data_dir.resolve() / f'{spec.name}.db'}",
        redis_url=MEMORY_REDIS,
        auth_jwks_url=f"{base_url}/auth/.well-known/jwks.json",
        boards_url=base_url,
        chat_url=base_url,
        demo_accounts=spec.name == "auth",
        instance_id="embedded",
    )


class EmbeddedInProduction(RuntimeError):
    """``DUOCHAT_ENVIRONMENT=production`` asked of the mode that seeds demo accounts."""


def refuse_production(environ: Mapping[str, str]) -> None:
    """The embedded mode runs SQLite, an in-process Redis and the demo accounts (password
    ``1234``): none of that may serve production, so asking for it is an error, not a warning."""
    if environ.get("DUOCHAT_ENVIRONMENT", "").strip().lower() == "production":
        raise EmbeddedInProduction(
            "DUOCHAT_ENVIRONMENT=production: the embedded mode seeds demo accounts and keeps its "
            "data in SQLite and memory, so it does not run in production. Run the services "
            "(docker compose or the CDK app) instead."
        )


def build(*, data_dir: Path, web_dist: Path, base_url: str) -> ASGIApp:
    """Migrate every service's SQLite database and return the dispatching ASGI app."""
    refuse_production(os.environ)
    data_dir.mkdir(parents=True, exist_ok=True)
    apps: dict[str, FastAPI] = {}
    for spec in SERVICES:
        settings = service_settings(spec, data_dir=data_dir, base_url=base_url)
        spec.migrate(settings)
        apps[spec.name] = spec.create_app(settings)

    def checks() -> dict[str, Check]:
        return {
            f"{name}.{check}": run
            for name, app in apps.items()
            for check, run in resource_checks(app.state).items()
        }

    own = FastAPI(openapi_url=None)
    install_error_handlers(own)
    own.include_router(health_router(checks))
    # One port serves every service here, so it serves their metrics too, by service label.
    own.include_router(
        labelled_metrics_router({name: app.state.telemetry.metrics for name, app in apps.items()})
    )
    return SecurityHeaders(RouteTableDispatcher(apps, default=web_app(web_dist), own=own))
