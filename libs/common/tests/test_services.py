"""Every service as ``duochat_common.services`` describes it: the same pieces under the same
names, one ``create_app`` signature, migrations that run, and ``python -m
duochat_common.migrate SERVICE`` against a real database."""

from __future__ import annotations

import inspect
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from duochat_common.routing import ROUTES
from duochat_common.services import SERVICES, service
from duochat_common.settings import ServiceSettings

NAMES = [spec.name for spec in SERVICES]


def test_one_description_per_route_in_its_order() -> None:
    assert NAMES == [route.service for route in ROUTES]
    assert [spec.port for spec in SERVICES] == [route.port for route in ROUTES]
    with pytest.raises(KeyError, match="auth, boards, chat, notify"):
        service("nope")


def test_every_create_app_has_one_signature() -> None:
    signatures = {spec.name: inspect.signature(spec.app_factory()) for spec in SERVICES}
    shapes = {
        name: [(p.name, p.kind, p.default) for p in sig.parameters.values()]
        for name, sig in signatures.items()
    }
    assert shapes["auth"] == [
        ("settings", inspect.Parameter.POSITIONAL_OR_KEYWORD, None),
        ("verifier", inspect.Parameter.KEYWORD_ONLY, None),
        ("database", inspect.Parameter.KEYWORD_ONLY, None),
        ("tracer_provider", inspect.Parameter.KEYWORD_ONLY, None),
    ]
    assert all(shape == shapes["auth"] for shape in shapes.values()), shapes


@pytest.mark.parametrize("name", NAMES)
def test_settings_and_app_come_from_the_description(name: str) -> None:
    spec = service(name)
    settings = spec.settings(environment="test", redis_prefix="x:")
    assert isinstance(settings, ServiceSettings)
    assert settings.redis_prefix == "x:"
    app = spec.create_app(settings)
    assert isinstance(app, FastAPI)
    assert app.state.settings is settings
    # Outside its lifespan nothing is open: alive, and not ready, by the shared checks.
    client = TestClient(app)
    assert client.get("/healthz").json() == {"status": "ok"}
    reply = client.get("/readyz")
    assert reply.status_code == 503
    assert reply.json()["checks"] == {
        "database": "fail: AttributeError",
        "redis": "fail: AttributeError",
    }


@pytest.mark.parametrize("name", NAMES)
def test_the_migrate_command_brings_a_schema_to_head(name: str, tmp_path: Path) -> None:
    database = tmp_path / f"{name}.db"
    result = subprocess.run(
        service(name).migrate_command(),
        env={"DUOCHAT_DATABASE_URL": f"sqlite:///{database}", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    with sqlite3.connect(database) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        (version,) = conn.execute(
            f"SELECT version_num FROM {service(name).version_table}"
        ).fetchone()
    assert version and len(tables) > 1


def test_the_migrate_command_refuses_an_unknown_service() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "duochat_common.migrate", "nope"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "invalid choice: 'nope'" in result.stderr
