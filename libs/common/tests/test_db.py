"""Database URLs, engines and the Alembic runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from duochat_common.db import Database, async_url, ensure_sqlite_dir, is_sqlite, sync_url
from duochat_common.migrations import alembic_config
from duochat_common.testing import mariadb_database


@pytest.mark.parametrize(
    ("url", "run_time", "migrations"),
    [
        (
            "mysql://u:p@db:3306/app",
            "mysql+aiomysql://u:p@db:3306/app?charset=utf8mb4",
            "mysql+pymysql://u:p@db:3306/app?charset=utf8mb4",
        ),
        (
            "mysql+pymysql://u:p@db/app",
            "mysql+aiomysql://u:p@db/app?charset=utf8mb4",
            "mysql+pymysql://u:p@db/app?charset=utf8mb4",
        ),
        (
            "mariadb://u@db/app?charset=latin1",
            "mysql+aiomysql://u@db/app?charset=latin1",
            "mysql+pymysql://u@db/app?charset=latin1",
        ),
        ("sqlite:///./data/x.db", "sqlite+aiosqlite:///./data/x.db", "sqlite:///./data/x.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db", "sqlite:///x.db"),
        ("sqlite://", "sqlite+aiosqlite://", "sqlite://"),
    ],
)
def test_url_translation(url: str, run_time: str, migrations: str) -> None:
    assert async_url(url).render_as_string(hide_password=False) == run_time
    assert sync_url(url).render_as_string(hide_password=False) == migrations


def test_special_characters_in_the_password_survive() -> None:
    url = "mysql://duochat:p%40ss%25w%3Ard@db/app"
    assert async_url(url).password == "p@ss%w:rd"
    assert sync_url(url).password == "p@ss%w:rd"
    # Alembic keeps its URL in a ConfigParser, where a bare '%' is an interpolation error
    cfg = alembic_config(script_location="x:migrations", database_url=url, version_table="v")
    assert make_url(cfg.get_main_option("sqlalchemy.url") or "").password == "p@ss%w:rd"


@pytest.mark.parametrize("url", ["postgresql://u@db/app", "oracle://db", "redis://x"])
def test_unsupported_databases_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="unsupported"):
        async_url(url)


def test_is_sqlite() -> None:
    assert is_sqlite("sqlite:///x.db")
    assert not is_sqlite("mysql://u@db/app")


def test_a_sqlite_file_gets_its_folder(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "app.db"
    ensure_sqlite_dir(f"sqlite:///{target}")
    assert target.parent.is_dir()
    ensure_sqlite_dir("sqlite:///:memory:")  # nothing to create
    ensure_sqlite_dir("mysql://u@db/app")


async def test_a_sqlite_database_works_and_enforces_foreign_keys(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'new' / 'app.db'}")
    try:
        await db.ping()
        async with db.engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
    finally:
        await db.dispose()


async def test_a_mariadb_database_answers_and_rolls_back_on_error() -> None:
    with mariadb_database("common") as url:
        db = Database(url)
        try:
            await db.ping()
            async with db.session() as session:
                await session.execute(text("CREATE TABLE t (id INT PRIMARY KEY)"))
            with pytest.raises(RuntimeError):
                async with db.session() as session:
                    await session.execute(text("INSERT INTO t VALUES (1)"))
                    raise RuntimeError("boom")
            async with db.session() as session:
                count = (await session.execute(text("SELECT COUNT(*) FROM t"))).scalar()
            assert count == 0
            charset = await _charset(db)
            assert charset == "utf8mb4"
        finally:
            await db.dispose()


async def _charset(db: Database) -> str:
    async with db.engine.connect() as conn:
        value = (await conn.execute(text("SELECT @@character_set_client"))).scalar()
    return str(value)
