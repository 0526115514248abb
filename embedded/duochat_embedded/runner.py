"""Build the embedded app: every service of the route table, and the web app, in one process."""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp

from duochat_common.errors import install_error_handlers
from duochat_common.health import Check, health_router
from duochat_common.metrics import labelled_metrics_router
from duochat_common.routing import ROUTES
from duochat_embedded.dispatch import RouteTableDispatcher
from duochat_embedded.web import SecurityHeaders, web_app

MEMORY_REDIS = "memory://embedded"


def service_settings(name: str, *, data_dir: Path, base_url: str) -> Any:
    """The settings one service gets in embedded mode: SQLite under ``data_dir``, memory Redis."""
    config = importlib.import_module(f"duochat_{name}.config")
    return config.Settings(
        environment="development",
        database_url=f"sqlite:///{data_dir.resolve() / f'{name}.db'}",
        redis_url=MEMORY_REDIS,
        auth_jwks_url=f"{base_url}/auth/.well-known/jwks.json",
        boards_url=base_url,
        chat_url=base_url,
        demo_accounts=name == "auth",
        instance_id="embedded",
    )


def available_services() -> list[str]:
    """The services of the route table, in its order."""
    return [route.service for route in ROUTES]


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
    for name in available_services():
        settings = service_settings(name, data_dir=data_dir, base_url=base_url)
        importlib.import_module(f"duochat_{name}.migrate").migrate(settings)
        apps[name] = importlib.import_module(f"duochat_{name}.main").create_app(settings)

    def checks() -> dict[str, Check]:
        out: dict[str, Check] = {}
        for name, app in apps.items():
            for attr in ("db", "redis"):
                resource = getattr(app.state, attr, None)
                if resource is not None:
                    out[f"{name}.{'database' if attr == 'db' else 'redis'}"] = resource.ping
        return out

    own = FastAPI(openapi_url=None)
    install_error_handlers(own)
    own.include_router(health_router(checks))
    # One port serves every service here, so it serves their metrics too, by service label.
    own.include_router(
        labelled_metrics_router({name: app.state.telemetry.metrics for name, app in apps.items()})
    )
    return SecurityHeaders(RouteTableDispatcher(apps, default=web_app(web_dist), own=own))
