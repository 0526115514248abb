"""Database engines and sessions (SQLAlchemy 2.0, asyncio).

One URL configures a service: ``mysql://user:pass@host/db`` in production (aiomysql at run time,
which is PyMySQL underneath, and PyMySQL itself for Alembic), ``sqlite:///path`` in embedded mode.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, Integer, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    """Declarative base; each service subclasses it for its own metadata."""


# A 64-bit id on MySQL; SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def _normalise(url: str) -> URL:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend not in ("mysql", "mariadb", "sqlite"):
        raise ValueError(f"unsupported database URL {parsed.render_as_string()!r}")
    return parsed


def async_url(url: str) -> URL:
    """The driver URL used at run time."""
    parsed = _normalise(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    query = dict(parsed.query)
    query.setdefault("charset", "utf8mb4")
    return parsed.set(drivername="mysql+aiomysql", query=query)


def sync_url(url: str) -> URL:
    """The driver URL used by Alembic migrations."""
    parsed = _normalise(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite")
    query = dict(parsed.query)
    query.setdefault("charset", "utf8mb4")
    return parsed.set(drivername="mysql+pymysql", query=query)


def is_sqlite(url: str) -> bool:
    return _normalise(url).get_backend_name() == "sqlite"


def ensure_sqlite_dir(url: str) -> None:
    """Create the folder of a SQLite file so that a fresh clone starts."""
    parsed = _normalise(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


class Database:
    """An async engine and its session factory."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        max_overflow: int = 20,
        connect_args: dict[str, Any] | None = None,
    ) -> None:
        self.url = url
        ensure_sqlite_dir(url)
        options: dict[str, Any] = {}
        if is_sqlite(url):
            options["connect_args"] = {"timeout": 30, **(connect_args or {})}
        else:
            options.update(
                pool_size=pool_size,
                max_overflow=max_overflow,
                pool_pre_ping=True,
                pool_recycle=1800,
                connect_args=connect_args or {},
            )
        self.engine: AsyncEngine = create_async_engine(async_url(url), **options)
        if is_sqlite(url):
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session that rolls back on error; the caller commits."""
        async with self.sessions() as session:
            try:
                yield session
            except BaseException:
                await session.rollback()
                raise

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
