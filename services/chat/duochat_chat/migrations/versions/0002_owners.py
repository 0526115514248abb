"""one owner per room: ids from the messages themselves, idempotency keys, the events outbox

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

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
Payload = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


def upgrade() -> None:
    with op.batch_alter_table("chat_messages") as table:
        table.add_column(sa.Column("client_message_id", sa.String(64), nullable=True))
        table.create_index(
            "uq_chat_messages_client", ["room_id", "client_message_id", "sender_id"], unique=True
        )
    # A room's next id is its highest stored id + 1, assigned by its owner; first visits are
    # messages keyed ``~enter``. The counters the row locks guarded are gone.
    op.execute(
        "UPDATE chat_messages SET client_message_id = '~enter' WHERE type = 'ENTER'"
        " AND sender_id IS NOT NULL"
    )
    with op.batch_alter_table("chat_rooms") as table:
        table.drop_column("last_id")
        table.drop_column("writer_entered")
        table.drop_column("applicant_entered")
    op.create_table(
        "chat_outbox",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("payload", Payload, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False, index=True),
    )


def downgrade() -> None:
    op.drop_table("chat_outbox")
    with op.batch_alter_table("chat_rooms") as table:
        table.add_column(sa.Column("last_id", sa.BigInteger(), server_default="0"))
        table.add_column(sa.Column("writer_entered", sa.Boolean(), server_default=sa.false()))
        table.add_column(sa.Column("applicant_entered", sa.Boolean(), server_default=sa.false()))
    with op.batch_alter_table("chat_messages") as table:
        table.drop_index("uq_chat_messages_client")
        table.drop_column("client_message_id")
