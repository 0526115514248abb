"""The hand-written migrations build exactly the tables the models describe."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect

from duochat_boards.config import Settings
from duochat_boards.models import BoardsBase
from duochat_common.db import sync_url
from duochat_common.migrations import alembic_config
from duochat_common.services import service
from duochat_testing.schema import schema_differences

SPEC = service("boards")


def _differences(url: str) -> list[object]:
    return schema_differences(url, BoardsBase.metadata, version_table=SPEC.version_table)


def test_mariadb_schema_matches_the_models(database_url):
    assert _differences(database_url) == []


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/boards.db"


def test_sqlite_schema_matches_the_models(sqlite_url):
    SPEC.migrate(Settings(database_url=sqlite_url))

    assert _differences(sqlite_url) == []


def test_upgrade_is_idempotent_and_downgrade_drops_everything(sqlite_url):
    SPEC.migrate(Settings(database_url=sqlite_url))
    SPEC.migrate(Settings(database_url=sqlite_url))

    command.downgrade(
        alembic_config(
            script_location=SPEC.migrations,
            database_url=sqlite_url,
            version_table=SPEC.version_table,
        ),
        "base",
    )

    engine = create_engine(sync_url(sqlite_url))
    assert set(inspect(engine).get_table_names()) == {SPEC.version_table}
    engine.dispose()
