"""Whether a service's hand-written migrations build exactly the tables its models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, create_engine

from duochat_common.db import sync_url


def schema_differences(url: str, metadata: MetaData, *, version_table: str) -> list[object]:
    """What alembic's autogenerate finds between the database at ``url`` and ``metadata``
    (the migrations' own version table aside); empty when they match."""
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={
                    "compare_type": True,
                    "include_name": lambda name, _kind, _parent: name != version_table,
                },
            )
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()
