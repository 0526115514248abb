"""``python -m duochat_boards.migrate``: bring boards' schema to head."""

from __future__ import annotations

from duochat_boards.config import Settings
from duochat_common.migrations import upgrade

SCRIPT_LOCATION = "duochat_boards:migrations"
VERSION_TABLE = "alembic_version_boards"


def migrate(settings: Settings | None = None) -> None:
    settings = settings or Settings()
    upgrade(
        script_location=SCRIPT_LOCATION,
        database_url=settings.database_url,
        version_table=VERSION_TABLE,
    )


if __name__ == "__main__":
    migrate()
