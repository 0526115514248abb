"""notify's hand-written migrations build exactly the tables its models describe."""

from __future__ import annotations

from duochat_common.services import service
from duochat_notify.config import Settings
from duochat_notify.models import NotifyBase
from duochat_testing.schema import schema_differences

SPEC = service("notify")


def differences(url: str) -> list[object]:
    return schema_differences(url, NotifyBase.metadata, version_table=SPEC.version_table)


def test_sqlite_schema_matches_the_models(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/notify.db"
    SPEC.migrate(Settings(database_url=url))
    assert differences(url) == []


def test_mariadb_schema_matches_the_models(database_url) -> None:
    assert differences(database_url) == []
