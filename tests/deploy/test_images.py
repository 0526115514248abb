"""The images without Docker: the builder stage's COPY and `uv sync` replayed in a temporary
folder, and the entrypoint (deploy/docker/serve.py) run for real."""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from duochat_common.routing import ROUTES

REPO = Path(__file__).resolve().parents[2]
SERVE = REPO / "deploy/docker/serve.py"
IGNORED = shutil.ignore_patterns("tests", "__pycache__", "*.pyc", ".venv", "node_modules")


def load_serve() -> ModuleType:
    spec = importlib.util.spec_from_file_location("duochat_serve", SERVE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


serve = load_serve()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def builder_stage(
    dockerfile: Path, args: dict[str, str]
) -> tuple[list[tuple[list[str], str]], str]:
    """The COPY instructions and the `uv sync` command of the first stage, with the build
    arguments ``args`` in place of their ``${NAME}``."""
    text = dockerfile.read_text().replace("\\\n", " ")
    for name, value in args.items():
        text = text.replace(f"${{{name}}}", value)
    first_stage = text.split("\nFROM ")[1]
    copies = []
    sync = ""
    for line in first_stage.splitlines():
        if line.lstrip().startswith("#"):
            continue
        words = shlex.split(line)
        if words[:1] == ["COPY"]:
            copies.append((words[1:-1], words[-1]))
        elif words[:1] == ["RUN"] and "uv sync" in line:
            sync = line[line.index("uv sync") :].strip()
    return copies, sync


def uv_binary() -> str:
    found = shutil.which("uv") or str(REPO / ".tools/bin/uv")
    if not Path(found).exists():
        pytest.fail("uv is not installed (make env installs it)")
    return found


@pytest.mark.timeout(300)
@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.service)
def test_builder_stage_installs_a_runnable_service(route, tmp_path: Path) -> None:
    copies, sync = builder_stage(
        REPO / "deploy/docker/service.Dockerfile",
        {"SERVICE": route.service, "PORT": str(route.port)},
    )
    src = tmp_path / "src"
    src.mkdir()
    for sources, destination in copies:
        for source in sources:
            origin = REPO / source
            target = src / destination
            if origin.is_dir():
                shutil.copytree(origin, target, ignore=IGNORED)
            else:
                target = target / origin.name if destination.endswith("/") else target
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, target)
    assert sync.startswith("uv sync "), sync
    venv = tmp_path / "venv"
    env = {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(venv),
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_PYTHON": sys.executable,
    }
    env.pop("VIRTUAL_ENV", None)
    result = subprocess.run(
        [uv_binary(), *shlex.split(sync)[1:]], cwd=src, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # What serve.py needs: the service found through the registry, its app factory, the
    # migration command, uvicorn and the MySQL drivers.
    probe = subprocess.run(
        [
            str(venv / "bin/python"),
            "-c",
            "import duochat_common.migrate, uvicorn, pymysql, aiomysql\n"
            "from duochat_common.services import service\n"
            f"spec = service({route.service!r})\n"
            "spec.app_factory(), spec.settings()",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert probe.returncode == 0, (
        f"the image of {route.service} would not run: {probe.stderr[-2000:]}\n"
        "(uvicorn must be a dependency of the service or of duochat-common)"
    )


def test_database_url_from_the_rds_secret() -> None:
    secret = json.dumps(
        {"username": "duochat", "password": "p@ss/w:rd", "host": "db.example", "port": 3306}
    )
    url = serve.database_url(secret_json=secret, db_name="chat")
    assert url == "mysql+aiomysql://duochat:p%40ss%2Fw%3Ard@db.example:3306/chat"
    with pytest.raises(ValueError):
        serve.database_url(secret_json=secret, db_name="chat; DROP")


def test_assemble_env_fills_only_what_is_missing() -> None:
    secret = json.dumps({"username": "u", "password": "p", "host": "h", "port": 3306})
    env = {"DB_SECRET": secret, "DB_NAME": "auth", "REDIS_HOST": "r", "REDIS_AUTH_TOKEN": "t"}
    assert serve.assemble_env(env) == {
        "DUOCHAT_DATABASE_URL": "mysql+aiomysql://u:p@h:3306/auth",
        "DUOCHAT_REDIS_URL": "rediss://:t@r:6379/0",
    }
    given = {**env, "DUOCHAT_DATABASE_URL": "x", "DUOCHAT_REDIS_URL": "y"}
    assert serve.assemble_env(given) == {}
    assert serve.assemble_env({}) == {}


def test_entrypoint_migrates_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    """auth's image entrypoint on SQLite: it migrates (the registry's command), then serves."""
    port = str(free_port())
    database = tmp_path / "auth.db"
    env = {
        **os.environ,
        "DUOCHAT_SERVICE": "auth",
        "PORT": port,
        "DUOCHAT_DATABASE_URL": f"sqlite:///{database}",
        # Assembled into DUOCHAT_REDIS_URL; /healthz touches no Redis.
        "REDIS_HOST": "cache.internal",
        "REDIS_AUTH_TOKEN": "tok",
    }
    process = subprocess.Popen(
        [sys.executable, str(SERVE)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(
            [sys.executable, str(SERVE), "healthcheck"], env={**env}, check=False
        ).returncode:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < deadline, "the service never became healthy"
            time.sleep(0.2)
        # Migrations ran first: auth's version table is at head.
        with sqlite3.connect(database) as conn:
            (version,) = conn.execute("SELECT version_num FROM alembic_version_auth").fetchone()
        assert version
        # serve.py exec'd uvicorn, so the signal reaches the server itself.
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        # uvicorn shuts down, then re-raises the signal it caught: 0 or -SIGTERM.
        assert process.wait(timeout=serve.GRACEFUL_SHUTDOWN_S + 5) in (0, -signal.SIGTERM)
        assert time.monotonic() - started < serve.GRACEFUL_SHUTDOWN_S
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = process.stdout.read().decode() if process.stdout else ""
    assert "Shutting down" in output or "Finished server process" in output, output


def test_healthcheck_fails_when_nothing_listens() -> None:
    assert serve.healthcheck(str(free_port())) == 1
