"""Single-use stream tickets: EventSource cannot send an Authorization header, so a signed-in
client trades its access token for a short-lived ticket and puts that in the stream's URL."""

from __future__ import annotations

import hashlib
import json
import secrets

import redis.asyncio as aioredis

from duochat_common.errors import TooManyRequests
from duochat_common.tokens import AuthUser
from duochat_notify.config import Settings

MAX_TICKET_CHARS = 128


class Tickets:
    """Issues tickets bound to a user and redeems each one at most once."""

    def __init__(self, redis: aioredis.Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings

    def _key(self, ticket: str) -> str:
        # Only a hash is stored: whoever can read Redis still cannot open anyone's stream.
        digest = hashlib.sha256(ticket.encode()).hexdigest()
        return self.settings.key(f"notify:ticket:{digest}")

    async def issue(self, user: AuthUser) -> str:
        """A fresh ticket for ``user``, valid for ``ticket_ttl_seconds``; a user may mint only
        ``tickets_per_minute`` (every stream needs one, and a reconnect is a new stream)."""
        minted = self.settings.key(f"notify:tickets:{{{user.id}}}")
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.incr(minted)
            pipe.expire(minted, 60, nx=True)
            pipe.ttl(minted)
            count, _, ttl = await pipe.execute()
        if int(count) > self.settings.tickets_per_minute:
            raise TooManyRequests(
                "too many stream tickets; wait a moment", retry_after=max(int(ttl), 1)
            )
        ticket = secrets.token_urlsafe(32)
        # The stream ends when the access token that asked for it expires.
        owner = json.dumps({"id": user.id, "username": user.username, "exp": user.expires_at})
        await self.redis.set(self._key(ticket), owner, ex=self.settings.ticket_ttl_seconds)
        return ticket

    async def redeem(self, ticket: str) -> AuthUser | None:
        """The ticket's user, if it is valid; it is spent either way (GETDEL is atomic)."""
        if not ticket or len(ticket) > MAX_TICKET_CHARS:
            return None
        owner = await self.redis.getdel(self._key(ticket))
        if owner is None:
            return None
        data = json.loads(owner)
        expires = data.get("exp")
        return AuthUser(
            id=int(data["id"]),
            username=str(data["username"]),
            expires_at=None if expires is None else int(expires),
        )
