"""notify's hand-written migrations build exactly the tables its models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from duochat_common.db import sync_url
from duochat_notify.config import Settings
from duochat_notify.migrate import VERSION_TABLE, migrate
from duochat_notify.models import NotifyBase


def differences(url: str) -> list[object]:
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={
                    "compare_type": True,
                    "include_name": lambda name, kind, _parent: name != VERSION_TABLE,
                },
            )
            return list(compare_metadata(context, NotifyBase.metadata))
    finally:
        engine.dispose()


def test_sqlite_schema_matches_the_models(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/notify.db"
    migrate(Settings(database_url=url))
    assert differences(url) == []


def test_mariadb_schema_matches_the_models(database_url) -> None:
    assert differences(database_url) == []
