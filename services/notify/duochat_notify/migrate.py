"""Bring notify's tables to the latest schema: ``python -m duochat_notify.migrate``."""

from __future__ import annotations

from duochat_common import migrations
from duochat_notify.config import Settings


def upgrade(settings: Settings) -> None:
    """Run notify's Alembic migrations against ``settings.database_url``."""
    migrations.upgrade(
        script_location="duochat_notify:migrations",
        database_url=settings.database_url,
        version_table="alembic_version_notify",
    )


if __name__ == "__main__":
    upgrade(Settings())
