"""unsent messages (tombstones) and system lines addressed to one member

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    with op.batch_alter_table("chat_messages") as table:
        table.add_column(sa.Column("deleted_at", Timestamp, nullable=True))
        table.add_column(sa.Column("audience_id", BigId, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("chat_messages") as table:
        table.drop_column("audience_id")
        table.drop_column("deleted_at")
