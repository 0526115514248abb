"""auth's use cases: register, sign in, rotate, sign out."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from duochat_auth.config import Settings
from duochat_auth.keys import KeyRing
from duochat_auth.models import RefreshToken, User
from duochat_auth.passwords import Passwords
from duochat_auth.policy import check_new_credentials
from duochat_auth.ratelimit import LoginLimiter, WindowLimiter
from duochat_auth.schemas import TokenPair
from duochat_auth.usernames import canonical
from duochat_common.errors import Conflict, Unauthorized
from duochat_common.tokens import OPERATOR


def _now() -> datetime:
    # Naive UTC: MySQL DATETIME has no zone, and SQLite would drop it.
    return datetime.now(UTC).replace(tzinfo=None)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def register(
    *,
    session: AsyncSession,
    passwords: Passwords,
    signups: WindowLimiter,
    address: str,
    username: str,
    password: str,
) -> User:
    """Create an account (a limited number per client address and window)."""
    username = check_new_credentials(username, password)
    await signups.hit(address, message="too many accounts created from this address; try later")
    return await create_user(
        session=session, passwords=passwords, username=username, password=password
    )


async def create_user(
    *, session: AsyncSession, passwords: Passwords, username: str, password: str
) -> User:
    """Store a user without the password policy (demo seeding uses this directly)."""
    hashed = await passwords.hash(password)
    user = User(
        username=username, canonical=canonical(username), password_hash=hashed, created_at=_now()
    )
    session.add(user)
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict(f"username {username!r} is taken", code="username_taken") from exc
    return user


async def _issue(
    *, session: AsyncSession, keys: KeyRing, settings: Settings, user: User, family_id: str
) -> TokenPair:
    refresh = secrets.token_urlsafe(32)
    session.add(
        RefreshToken(
            token_hash=_digest(refresh),
            family_id=family_id,
            user_id=user.id,
            expires_at=_now() + timedelta(seconds=settings.refresh_token_ttl_seconds),
            created_at=_now(),
        )
    )
    await session.commit()
    access = keys.sign_access_token(
        user_id=user.id,
        username=user.username,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl=settings.access_token_ttl_seconds,
        role=OPERATOR if user.canonical in settings.operator_names() else None,
    )
    return TokenPair(
        access_token=access,
        refresh_token=refresh,
        expires_in=settings.access_token_ttl_seconds,
    )


async def login(
    *,
    session: AsyncSession,
    keys: KeyRing,
    settings: Settings,
    limiter: LoginLimiter,
    passwords: Passwords,
    username: str,
    password: str,
    address: str,
) -> TokenPair:
    """Check the password (rate-limited per account and address) and issue a token pair."""
    key = canonical(username)
    # The hash slot first: a flood is refused (503) before it holds database connections.
    async with passwords.slot() as hasher:
        user = await session.scalar(select(User).where(User.canonical == key))
        await session.commit()  # ends the read: the connection goes back while the hash runs
        # Every spelling that finds an account counts against that account.
        account = f"id:{user.id}" if user else f"name:{key}"
        await limiter.check(account=account, address=address)
        matches = await hasher.verify(user.password_hash if user else None, password)
    if not matches or user is None:
        await limiter.failed(account=account, address=address)
        raise Unauthorized("wrong username or password", code="invalid_credentials")
    await limiter.succeeded(account=account)
    return await _issue(
        session=session, keys=keys, settings=settings, user=user, family_id=uuid.uuid4().hex
    )


async def _revoke_family(session: AsyncSession, family_id: str) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=_now())
    )
    await session.commit()


async def _find_refresh(session: AsyncSession, token: str) -> RefreshToken | None:
    return await session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == _digest(token))
    )


async def refresh(
    *, session: AsyncSession, keys: KeyRing, settings: Settings, token: str
) -> TokenPair:
    """Rotate: the old refresh token is spent; presenting a spent one revokes its family."""
    row = await session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == _digest(token))
    )
    if row is None:
        raise Unauthorized("unknown refresh token", code="invalid_refresh_token")
    if row.revoked_at is not None:
        raise Unauthorized("refresh token revoked", code="invalid_refresh_token")
    if row.expires_at <= _now():
        raise Unauthorized("refresh token expired", code="invalid_refresh_token")
    # Spend it atomically: of two racing refreshes exactly one sees rowcount 1.
    spent = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == row.id, RefreshToken.used_at.is_(None))
        .values(used_at=_now())
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        await _revoke_family(session, row.family_id)
        raise Unauthorized(
            "refresh token reused; every session of this sign-in is revoked",
            code="refresh_token_reused",
        )
    user = await session.get(User, row.user_id)
    if user is None:
        raise Unauthorized("account no longer exists", code="invalid_refresh_token")
    return await _issue(
        session=session, keys=keys, settings=settings, user=user, family_id=row.family_id
    )


async def logout(*, session: AsyncSession, token: str) -> None:
    """Revoke the sign-in a refresh token belongs to; unknown tokens are ignored."""
    row = await session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == _digest(token))
    )
    if row is not None:
        await _revoke_family(session, row.family_id)
