"""notify's hand-written migrations build exactly the tables its models describe."""

from __future__ import annotations

from duochat_notify.config import Settings
from duochat_notify.migrate import VERSION_TABLE, migrate
from duochat_notify.models import NotifyBase
from duochat_testing.schema import schema_differences


def differences(url: str) -> list[object]:
    return schema_differences(url, NotifyBase.metadata, version_table=VERSION_TABLE)


def test_sqlite_schema_matches_the_models(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/notify.db"
    migrate(Settings(database_url=url))
    assert differences(url) == []


def test_mariadb_schema_matches_the_models(database_url) -> None:
    assert differences(database_url) == []
