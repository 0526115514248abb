"""``python -m duochat_chat.migrate``: bring chat's schema to head."""

from __future__ import annotations

from duochat_chat.config import Settings
from duochat_common.migrations import upgrade

SCRIPT_LOCATION = "duochat_chat:migrations"
VERSION_TABLE = "alembic_version_chat"


def migrate(settings: Settings | None = None) -> None:
    settings = settings or Settings()
    upgrade(
        script_location=SCRIPT_LOCATION,
        database_url=settings.database_url,
        version_table=VERSION_TABLE,
    )


if __name__ == "__main__":
    migrate()
