"""notify_alarms

Revision ID: 0001_alarms
Revises:
Create Date: 2025-01-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0001_alarms"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "notify_alarms",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("room_id", sa.String(64), nullable=True),
        sa.Column("board_id", sa.BigInteger(), nullable=True),
        sa.Column("board_title", sa.String(200), nullable=True),
        sa.Column("from_user_id", sa.BigInteger(), nullable=True),
        sa.Column("from_username", sa.String(64), nullable=True),
        sa.Column("preview", sa.String(400), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("source_event_id", sa.String(64), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("read_at", Timestamp, nullable=True),
        sa.UniqueConstraint("user_id", "source_event_id", name="uq_notify_alarms_source"),
        mysql_charset="utf8mb4",
    )
    op.create_index("ix_notify_alarms_user_id", "notify_alarms", ["user_id", "id"])
    op.create_index("ix_notify_alarms_user_room", "notify_alarms", ["user_id", "room_id"])
    op.create_index("ix_notify_alarms_user_unread", "notify_alarms", ["user_id", "read_at"])
    op.create_index("ix_notify_alarms_read_at", "notify_alarms", ["read_at"])


def downgrade() -> None:
    op.drop_table("notify_alarms")
