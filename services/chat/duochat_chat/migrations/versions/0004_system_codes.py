"""a SYSTEM line's machine code and parameters, for clients to word in their language

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chat_messages") as table:
        table.add_column(sa.Column("code", sa.String(32), nullable=True))
        table.add_column(sa.Column("params", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("chat_messages") as table:
        table.drop_column("params")
        table.drop_column("code")
