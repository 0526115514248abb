"""auth's migrations reach head on MariaDB (also through a password that needs URL-encoding)
and on SQLite, and running them again changes nothing."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import quote

from alembic import command
from sqlalchemy import create_engine, inspect, text

from duochat_auth.config import Settings
from duochat_common.db import ensure_sqlite_dir, sync_url
from duochat_common.migrations import alembic_config
from duochat_common.services import service
from duochat_common.testing import MYSQL_SERVER, mariadb_database

SPEC = service("auth")

TABLES = {"users", "refresh_tokens", "signing_keys", SPEC.version_table}


def tables_of(url: str) -> set[str]:
    engine = create_engine(sync_url(url))
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_sqlite_reaches_head_twice(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh' / 'auth.db'}"
    SPEC.migrate(Settings(database_url=url))
    SPEC.migrate(Settings(database_url=url))
    assert tables_of(url) == TABLES


def test_mariadb_through_a_password_with_url_escapes() -> None:
    user = f"t_{uuid.uuid4().hex[:8]}"
    password = "p@ss%w:rd/1"
    server = create_engine(MYSQL_SERVER, isolation_level="AUTOCOMMIT")
    with mariadb_database("authmig") as url:
        name = url.rsplit("/", 1)[1]
        host = url.split("@", 1)[1].rsplit("/", 1)[0]
        with server.connect() as conn:
            conn.execute(text(f"CREATE USER '{user}'@'%' IDENTIFIED BY :pw"), {"pw": password})
            conn.execute(text(f"GRANT ALL ON `{name}`.* TO '{user}'@'%'"))
        try:
            own = f"mysql://{user}:{quote(password, safe='')}@{host}/{name}"
            SPEC.migrate(Settings(database_url=own))
            SPEC.migrate(Settings(database_url=own))
            assert tables_of(url) == TABLES
        finally:
            with server.connect() as conn:
                conn.execute(text(f"DROP USER IF EXISTS '{user}'@'%'"))
            server.dispose()


def test_existing_names_get_their_canonical_form(tmp_path: Path) -> None:
    # Issue 12, finding 5: rows stored before the canonical column existed. SQLite compared
    # names byte for byte, so two of them may share a canonical form; the later one keeps its
    # account under "<canonical>#<id>".
    url = f"sqlite:///{tmp_path / 'old' / 'auth.db'}"
    ensure_sqlite_dir(url)
    config = alembic_config(
        script_location=SPEC.migrations,
        database_url=url,
        version_table=SPEC.version_table,
    )
    command.upgrade(config, "0001")
    engine = create_engine(sync_url(url))
    try:
        with engine.begin() as conn:
            for name in ("HappyDaddy", "happydaddy", "Zed.Two"):
                conn.execute(
                    text(
                        "INSERT INTO users (username, password_hash, created_at) "
                        "VALUES (:name, 'x', '2026-01-01 00:00:00')"
                    ),
                    {"name": name},
                )
        SPEC.migrate(Settings(database_url=url))
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, username, canonical FROM users ORDER BY id")).all()
            assert [(r.username, r.canonical) for r in rows] == [
                ("HappyDaddy", "happydaddy"),
                ("happydaddy", f"happydaddy#{rows[1].id}"),
                ("Zed.Two", "zed.two"),
            ]
            uniques = inspect(conn).get_unique_constraints("users")
            assert any(u["column_names"] == ["canonical"] for u in uniques)
    finally:
        engine.dispose()
