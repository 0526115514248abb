"""Alembic, run programmatically: each service keeps its own versions folder."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, create_engine, engine_from_config, pool, text

from duochat_common.db import ensure_sqlite_dir, is_sqlite, sync_url


def alembic_config(*, script_location: str, database_url: str, version_table: str) -> Config:
    """An Alembic config for one service (``script_location`` like ``duochat_auth:migrations``)."""
    cfg = Config()
    cfg.set_main_option("script_location", script_location)
    url = sync_url(database_url).render_as_string(hide_password=False)
    # Alembic's config is a ConfigParser: a '%' (as in a URL-encoded password) must be doubled.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["version_table"] = version_table
    return cfg


def upgrade(*, script_location: str, database_url: str, version_table: str) -> None:
    """Bring the service's schema to head; on MySQL, one task at a time.

    Several tasks of a service start together on a deploy, and each runs this first: a MySQL
    named lock makes the others wait and then find the schema already at head.
    """
    ensure_sqlite_dir(database_url)
    config = alembic_config(
        script_location=script_location,
        database_url=database_url,
        version_table=version_table,
    )
    if is_sqlite(database_url):
        command.upgrade(config, "head")
        return
    engine = create_engine(sync_url(database_url), poolclass=pool.NullPool)
    # Named locks are server-wide: include the database so unrelated databases never wait.
    lock = f"duochat_migrate_{sync_url(database_url).database}_{version_table}"[:64]
    try:
        with engine.connect() as conn:
            got = conn.execute(text("SELECT GET_LOCK(:name, 600)"), {"name": lock}).scalar()
            if got != 1:
                raise RuntimeError(f"could not take the migration lock {lock!r} in 600 s")
            try:
                command.upgrade(config, "head")
            finally:
                conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": lock})
    finally:
        engine.dispose()


def run_env(target_metadata: MetaData) -> None:
    """The body of every service's ``migrations/env.py`` (online mode only)."""
    from alembic import context

    config = context.config
    section = config.get_section(config.config_ini_section) or {}
    section["sqlalchemy.url"] = config.get_main_option("sqlalchemy.url") or ""
    connectable = engine_from_config(section, prefix="sqlalchemy.", poolclass=pool.NullPool)
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table=config.attributes.get("version_table", "alembic_version"),
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
