"""users.canonical: NFKC + casefold of the name, unique on every database

Revision ID: 0002
Revises: 0001

Existing rows get the canonical form of their name. Two old names with the same canonical form
(possible on SQLite, which compared names byte for byte) keep both accounts: the older one keeps
the plain form, each later one gets ``<canonical>#<id>``, the name it signs in with from now on.
"""

import logging
import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")
Canonical = sa.String(64).with_variant(sa.String(64, collation="utf8mb4_bin"), "mysql", "mariadb")


def _canonical(name: str) -> str:
    # Kept here, not imported: a migration must not change when the application code does.
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("canonical", Canonical, nullable=True))
    users = sa.table("users", sa.column("id", sa.BigInteger), sa.column("username"))
    bind = op.get_bind()
    rows = bind.execute(sa.select(users.c.id, users.c.username).order_by(users.c.id)).all()
    seen: set[str] = set()
    for user_id, username in rows:
        key = _canonical(username)[:48]
        if key in seen:
            log.warning(
                "user %s: %r clashes with an older name; signs in as %s#%s",
                user_id,
                username,
                key,
                user_id,
            )
            key = f"{key}#{user_id}"
        seen.add(key)
        bind.execute(
            sa.text("UPDATE users SET canonical = :key WHERE id = :id"), {"key": key, "id": user_id}
        )
    with op.batch_alter_table("users") as batch:
        batch.alter_column("canonical", existing_type=Canonical, nullable=False)
        batch.create_unique_constraint("uq_users_canonical", ["canonical"])


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("uq_users_canonical", type_="unique")
        batch.drop_column("canonical")
