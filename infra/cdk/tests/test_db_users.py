"""The user-provisioning custom resource's SQL, run for real against the local MariaDB: each
service's user gets every right on its own database, none elsewhere, and must use TLS."""

from __future__ import annotations

import importlib.util
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pymysql
import pytest

HANDLER = Path(__file__).resolve().parents[1] / "duochat_infra/db_users_lambda/index.py"
SERVER = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}


def load_handler() -> ModuleType:
    spec = importlib.util.spec_from_file_location("duochat_db_users_handler", HANDLER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


handler = load_handler()


@pytest.fixture
def root() -> Iterator[pymysql.connections.Connection]:
    if os.environ.get("DUOCHAT_TEST_MYSQL", "").split("@")[-1] not in ("", "127.0.0.1:3306"):
        pytest.skip("uses the default local server only")
    try:
        connection = pymysql.connect(**SERVER, autocommit=True)  # type: ignore[arg-type]
    except pymysql.err.OperationalError as exc:
        pytest.fail(f"MariaDB/MySQL is not running on 127.0.0.1:3306: {exc}")
    yield connection
    connection.close()


@pytest.fixture
def names(root: pymysql.connections.Connection) -> Iterator[list[str]]:
    suffix = secrets.token_hex(3)
    made = [f"t13{service}_{suffix}" for service in ("auth", "chat")]
    yield made
    with root.cursor() as cursor:
        for name in made:
            cursor.execute("DROP USER IF EXISTS %s@'%%'", (name,))
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


def test_each_user_owns_its_database_only_and_needs_tls(
    root: pymysql.connections.Connection, names: list[str]
) -> None:
    users = [{"database": n, "username": n, "password": secrets.token_urlsafe(16)} for n in names]
    with root.cursor() as cursor:
        assert handler.provision(cursor, users) == names
        # Idempotent: an update runs the same statements again, and a new password follows.
        users[0]["password"] = secrets.token_urlsafe(16)
        assert handler.provision(cursor, users) == names
        for name in names:
            cursor.execute("SHOW GRANTS FOR %s@'%%'", (name,))
            grants = [row[0] for row in cursor.fetchall()]
            on_databases = [g for g in grants if " ON `" in g]
            assert len(on_databases) == 1, grants
            assert f"ON `{name}`.*" in on_databases[0]
            assert "ALL PRIVILEGES" in on_databases[0] and "GRANT OPTION" not in on_databases[0]
            assert not any(" ON *.*" in g and "USAGE" not in g for g in grants), grants
            cursor.execute("SHOW CREATE USER %s@'%%'", (name,))
            assert "REQUIRE SSL" in cursor.fetchone()[0]
    # Without TLS the server refuses the user (this server has no TLS at all).
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(
            host="127.0.0.1", user=names[0], password=users[0]["password"], database=names[0]
        )


def test_names_that_would_need_quoting_are_refused() -> None:
    with pytest.raises(ValueError):
        handler.statements(database="chat`; DROP", username="chat", password="x")
    with pytest.raises(ValueError):
        handler.statements(database="chat", username="Chat'@'%", password="x")
