"""Every service described once: its name and port (from the route table), its settings class,
its app factory and its migrations.

The embedded runner, the local-services runner, the image entrypoint, ``python -m
duochat_common.migrate`` and the test and benchmark harnesses find a service here and nowhere
else. The library cannot import the services (they depend on it, and an image holds only one of
them), so each piece is named by ``module:attribute`` and imported when asked for.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from duochat_common.migrations import upgrade
from duochat_common.routing import ROUTES, Route, by_service
from duochat_common.settings import ServiceSettings

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.trace import TracerProvider

    from duochat_common.db import Database
    from duochat_common.tokens import TokenVerifier


class AppFactory(Protocol):
    """The one ``create_app`` signature every service has."""

    def __call__(
        self,
        settings: Any = None,
        *,
        verifier: TokenVerifier | None = None,
        database: Database | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> FastAPI: ...


def _load(reference: str) -> Any:
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One service: what runs it, what configures it, what migrates its schema."""

    name: str
    # ``module:attribute`` of the ServiceSettings subclass and of ``create_app``; the second is
    # what ``uvicorn --factory`` takes.
    settings_ref: str
    app_ref: str
    # Alembic's ``package:folder`` of the versions, and the service's own version table.
    migrations: str
    version_table: str

    @property
    def route(self) -> Route:
        return by_service(self.name)

    @property
    def port(self) -> int:
        return self.route.port

    def settings(self, **overrides: Any) -> ServiceSettings:
        """The service's settings: the environment, then ``overrides`` on top."""
        settings_class: Callable[..., ServiceSettings] = _load(self.settings_ref)
        return settings_class(**overrides)

    def app_factory(self) -> AppFactory:
        factory: AppFactory = _load(self.app_ref)
        return factory

    def create_app(self, settings: ServiceSettings | None = None, **options: Any) -> FastAPI:
        """The service's app (``options``: ``verifier``, ``database``, ``tracer_provider``)."""
        return self.app_factory()(settings, **options)

    def migrate_command(self) -> list[str]:
        """The command that migrates this service in a process of its own (images, runners)."""
        return [sys.executable, "-m", "duochat_common.migrate", self.name]

    def migrate(self, settings: ServiceSettings | None = None) -> None:
        """Bring the schema to head on the settings' database (default: the environment's)."""
        settings = settings or self.settings()
        upgrade(
            script_location=self.migrations,
            database_url=settings.database_url,
            version_table=self.version_table,
        )


def _spec(name: str) -> ServiceSpec:
    package = f"duochat_{name}"
    return ServiceSpec(
        name=name,
        settings_ref=f"{package}.config:Settings",
        app_ref=f"{package}.main:create_app",
        migrations=f"{package}:migrations",
        version_table=f"alembic_version_{name}",
    )


# In the route table's order: the embedded runner starts them in this order.
SERVICES: tuple[ServiceSpec, ...] = tuple(_spec(route.service) for route in ROUTES)


def service(name: str) -> ServiceSpec:
    """The service called ``name``; ``KeyError`` names the known ones."""
    for spec in SERVICES:
        if spec.name == name:
            return spec
    raise KeyError(f"no service {name!r}; the services are {', '.join(s.name for s in SERVICES)}")
