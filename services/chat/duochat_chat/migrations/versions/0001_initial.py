"""room projection, messages, read marks

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "chat_rooms",
        sa.Column("room_id", sa.String(64), primary_key=True),
        sa.Column("board_id", BigId, nullable=False),
        sa.Column("board_title", sa.String(200), nullable=False, server_default=""),
        sa.Column("writer_id", BigId, nullable=False, index=True),
        sa.Column("writer_name", sa.String(64), nullable=False),
        sa.Column("applicant_id", BigId, nullable=False, index=True),
        sa.Column("applicant_name", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="open"),
        sa.Column("last_id", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("writer_entered", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("applicant_entered", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("updated_at", Timestamp, nullable=False),
    )
    op.create_table(
        "chat_messages",
        sa.Column("room_id", sa.String(64), primary_key=True),
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("type", sa.String(8), nullable=False),
        sa.Column("sender_id", BigId, nullable=True),
        sa.Column("sender_name", sa.String(64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("user_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", Timestamp, nullable=False),
    )
    op.create_table(
        "chat_reads",
        sa.Column("room_id", sa.String(64), primary_key=True),
        sa.Column("user_id", BigId, primary_key=True),
        sa.Column("last_read_id", sa.BigInteger(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("chat_reads")
    op.drop_table("chat_messages")
    op.drop_table("chat_rooms")
