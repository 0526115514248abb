"""auth's tables: users, refresh tokens (rotating families), signing keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from duochat_common.db import BigId


class AuthBase(DeclarativeBase):
    """auth's own metadata: no other service's tables."""


# The canonical name compares byte for byte on MySQL too: its default collations would match
# ``happydâddy`` to ``happydaddy`` again.
CanonicalName = String(64).with_variant(String(64, collation="utf8mb4_bin"), "mysql", "mariadb")


class User(AuthBase):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("canonical", name="uq_users_canonical"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(32), unique=True)
    # NFKC + casefold of ``username`` (see usernames.py): the one a name is looked up by.
    canonical: Mapped[str] = mapped_column(CanonicalName)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime)


class RefreshToken(AuthBase):
    """One issued refresh token. Only its SHA-256 is stored; a family is one login's chain."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (Index("ix_refresh_tokens_family_id", "family_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    family_id: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class SigningKey(AuthBase):
    """A generated key, used only when no key is configured (development)."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(32), primary_key=True)
    private_pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime)
