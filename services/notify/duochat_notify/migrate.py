"""``python -m duochat_notify.migrate``: bring notify's schema to head."""

from __future__ import annotations

from duochat_common.migrations import upgrade
from duochat_notify.config import Settings

SCRIPT_LOCATION = "duochat_notify:migrations"
VERSION_TABLE = "alembic_version_notify"


def migrate(settings: Settings | None = None) -> None:
    settings = settings or Settings()
    upgrade(
        script_location=SCRIPT_LOCATION,
        database_url=settings.database_url,
        version_table=VERSION_TABLE,
    )


if __name__ == "__main__":
    migrate()
