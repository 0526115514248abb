"""rooms end (left, blocked), blocks, room mutes, reports

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    with op.batch_alter_table("rooms") as batch:
        batch.add_column(sa.Column("ended_at", Timestamp, nullable=True))
        batch.add_column(sa.Column("ended_by", BigId, nullable=True))
    # Rooms a board's decision already made read-only ended when their board last changed.
    op.execute(
        "UPDATE rooms SET ended_at ="
        " (SELECT updated_at FROM boards WHERE boards.id = rooms.board_id)"
        " WHERE status IN ('rejected', 'closed')"
    )
    op.create_table(
        "blocks",
        sa.Column("blocker_id", BigId, primary_key=True, autoincrement=False),
        sa.Column("blocked_id", BigId, primary_key=True, autoincrement=False),
        sa.Column("blocked_username", sa.String(64), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("changed_at", Timestamp, nullable=False),
    )
    op.create_index("ix_blocks_blocked_blocker", "blocks", ["blocked_id", "blocker_id"])
    op.create_table(
        "room_mutes",
        sa.Column("room_id", sa.String(36), primary_key=True),
        sa.Column("user_id", BigId, primary_key=True, autoincrement=False),
        sa.Column("muted", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("changed_at", Timestamp, nullable=False),
    )
    op.create_table(
        "reports",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("reporter_id", BigId, nullable=False),
        sa.Column("reporter_username", sa.String(64), nullable=False),
        sa.Column("reported_id", BigId, nullable=False),
        sa.Column("reported_username", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("room_id", sa.String(36), nullable=True),
        sa.Column("board_id", BigId, nullable=True),
        sa.Column("message_ids", sa.Text(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
    )
    op.create_index("ix_reports_reported_id_id", "reports", ["reported_id", "id"])
    op.create_index("ix_reports_reporter_id_id", "reports", ["reporter_id", "id"])


def downgrade() -> None:
    op.drop_table("reports")
    op.drop_table("room_mutes")
    op.drop_table("blocks")
    with op.batch_alter_table("rooms") as batch:
        batch.drop_column("ended_by")
        batch.drop_column("ended_at")
