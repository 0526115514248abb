"""Fixtures that start whole stacks: the embedded process, and the local services behind nginx."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from duochat_common.routing import ROUTES
from duochat_embedded.localstack import LocalStack, drop_databases, free_port, running
from duochat_embedded.process import EmbeddedProcess

MYSQL = os.environ.get("DUOCHAT_TEST_MYSQL_SERVER", "mysql://root@127.0.0.1:3306")
# The operator of the local-services stack (DUOCHAT_OPERATORS): a name of this run alone.
OPERATOR = f"oper{os.getpid()}"


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[EmbeddedProcess]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    server = EmbeddedProcess(data_dir=data_dir, log=tmp_path / "embedded.log")
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """Every service as its own process against MariaDB and Redis, nginx in front."""
    prefix = f"t_e2e_{os.getpid()}_"
    run_dir = tmp_path_factory.mktemp("stack")
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("DUOCHAT_OPERATORS", OPERATOR)  # the processes inherit it
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
