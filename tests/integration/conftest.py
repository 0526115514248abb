"""Fixtures that start whole stacks: the embedded process, and the local services behind nginx."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from duochat_common.routing import ROUTES
from duochat_embedded.localstack import LocalStack, drop_databases, free_port, running

MYSQL = os.environ.get("DUOCHAT_TEST_MYSQL_SERVER", "mysql://root@127.0.0.1:3306")


class Embedded:
    """``python -m duochat_embedded`` as a newcomer runs it, on a free port."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir / "embedded.log"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "duochat_embedded",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
            ],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            time.sleep(0.2)
        raise TimeoutError(self.log.read_text()[-3000:])

    def stop(self) -> int:
        """Ctrl-C, as a user stops it; returns the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(20)


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Embedded]:
    server = Embedded(tmp_path / "data")
    server.data_dir.mkdir()
    server.start()
    try:
        yield server
    finally:
        if server.proc and server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """Every service as its own process against MariaDB and Redis, nginx in front."""
    prefix = f"t_e2e_{os.getpid()}_"
    run_dir = tmp_path_factory.mktemp("stack")
    try:
        with running(
            mysql_server=MYSQL,
            db_prefix=prefix,
            redis_prefix=f"{prefix}:",
            gateway_port=free_port(),
            ports={r.service: free_port() for r in ROUTES},
            run_dir=run_dir,
        ) as started:
            yield started
    finally:
        drop_databases(MYSQL, [f"{prefix}{r.service}" for r in ROUTES])
