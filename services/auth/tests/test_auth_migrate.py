"""auth's migrations reach head on MariaDB (also through a password that needs URL-encoding)
and on SQLite, and running them again changes nothing."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import create_engine, inspect, text

from duochat_auth.config import Settings
from duochat_auth.migrate import VERSION_TABLE, migrate
from duochat_common.db import sync_url
from duochat_common.testing import MYSQL_SERVER, mariadb_database

TABLES = {"users", "refresh_tokens", "signing_keys", VERSION_TABLE}


def tables_of(url: str) -> set[str]:
    engine = create_engine(sync_url(url))
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_sqlite_reaches_head_twice(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh' / 'auth.db'}"
    migrate(Settings(database_url=url))
    migrate(Settings(database_url=url))
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
            migrate(Settings(database_url=own))
            migrate(Settings(database_url=own))
            assert tables_of(url) == TABLES
        finally:
            with server.connect() as conn:
                conn.execute(text(f"DROP USER IF EXISTS '{user}'@'%'"))
            server.dispose()
