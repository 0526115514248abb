"""Database engines and sessions (SQLAlchemy 2.0, asyncio).

One URL configures a service: ``mysql://user:pass@host/db`` in production (aiomysql at run time,
which is PyMySQL underneath, and PyMySQL itself for Alembic), ``sqlite:///path`` in embedded mode.

A deployment can add to a MySQL URL's query:

- ``ssl_ca=/path/ca.pem``: connect over TLS and verify the server's certificate and host name
  against that CA (RDS requires TLS). Both drivers get it: aiomysql as an ``ssl.SSLContext``,
  PyMySQL through SQLAlchemy's own ``ssl_ca`` handling.
- ``pool_size=N&max_overflow=M``: a ceiling on every pool the service opens on that URL, so
  that all tasks together fit in the server's ``max_connections`` (the CDK stack derives them
  from the task counts). A pool asked for with smaller numbers keeps them.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, event, text
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

# A 64-bit id on MySQL; SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")
# A moment to the microsecond (naive UTC): MySQL's DATETIME drops the fraction unless asked.
Timestamp = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def utcnow() -> datetime:
    """Now, as stored: naive UTC (neither MySQL's DATETIME nor SQLite keeps a zone)."""
    return datetime.now(UTC).replace(tzinfo=None)


def _normalise(url: str) -> URL:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend not in ("mysql", "mariadb", "sqlite"):
        raise ValueError(f"unsupported database URL {parsed.render_as_string()!r}")
    return parsed


# Query keys that configure the pool, not the driver.
_POOL_KEYS = ("pool_size", "max_overflow")
_TLS_CA_KEY = "ssl_ca"


def async_url(url: str) -> URL:
    """The driver URL used at run time."""
    parsed = _normalise(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    query = {k: v for k, v in parsed.query.items() if k not in (*_POOL_KEYS, _TLS_CA_KEY)}
    query.setdefault("charset", "utf8mb4")
    return parsed.set(drivername="mysql+aiomysql", query=query)


def sync_url(url: str) -> URL:
    """The driver URL used by Alembic migrations."""
    parsed = _normalise(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite")
    query = {k: v for k, v in parsed.query.items() if k not in _POOL_KEYS}
    query.setdefault("charset", "utf8mb4")
    return parsed.set(drivername="mysql+pymysql", query=query)


def pool_limits(url: str) -> dict[str, int]:
    """The ``pool_size``/``max_overflow`` ceilings a deployment put in the URL."""
    query = _normalise(url).query
    return {key: int(str(query[key])) for key in _POOL_KEYS if key in query}


def tls_context(url: str) -> ssl.SSLContext | None:
    """A verifying TLS context when the URL names a CA (``ssl_ca``), else None."""
    ca = _normalise(url).query.get(_TLS_CA_KEY)
    return ssl.create_default_context(cafile=str(ca)) if ca else None


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
            limits = pool_limits(url)
            tls = tls_context(url)
            options.update(
                pool_size=min(pool_size, limits.get("pool_size", pool_size)),
                max_overflow=min(max_overflow, limits.get("max_overflow", max_overflow)),
                pool_pre_ping=True,
                pool_recycle=1800,
                connect_args={**({"ssl": tls} if tls else {}), **(connect_args or {})},
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
