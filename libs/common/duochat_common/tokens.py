"""Access-token verification against auth's JWKS, fetched and cached, with key rotation.

Only auth signs tokens (EdDSA). Every other service holds a ``TokenVerifier`` that knows the
public keys by ``kid``. An unknown ``kid`` triggers one refetch (at most every few seconds), so a
rotated key is picked up without a restart, and a forged ``kid`` cannot hammer auth.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import jwt

from duochat_common.errors import Unauthorized, Unavailable

log = logging.getLogger(__name__)
ALGORITHMS = ["EdDSA"]
OPERATOR = "operator"  # the one role auth issues (moderation: GET /boards/reports)
JwksFetcher = Callable[[], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class AuthUser:
    """The authenticated caller, as the access token names them."""

    id: int
    username: str
    # When the token that named them expires (Unix seconds); long-lived connections end there.
    expires_at: int | None = field(default=None, compare=False)
    # The ``role`` claim: ``"operator"`` for accounts auth lists in DUOCHAT_OPERATORS, else None.
    role: str | None = field(default=None, compare=False)

    @property
    def is_operator(self) -> bool:
        return self.role == OPERATOR


def http_jwks_fetcher(url: str, *, timeout: float = 5.0) -> JwksFetcher:
    """Fetch the JWKS document over HTTP."""

    async def fetch() -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=timeout) as client:
            response = await client.get(url)
            response.raise_for_status()
            data: dict[str, Any] = response.json()
            return data

    return fetch


class VerifierSettings(Protocol):
    """The settings a verifier is built from (``ServiceSettings`` has them all)."""

    auth_jwks_url: str
    auth_jwks_json: str
    jwt_issuer: str
    jwt_audience: str
    jwks_cache_seconds: int


def jwks_fetcher(settings: VerifierSettings) -> JwksFetcher:
    """Where a verifier gets its keys: the static document when one is set, else auth's URL."""
    if not settings.auth_jwks_json:
        return http_jwks_fetcher(settings.auth_jwks_url)
    document: dict[str, Any] = json.loads(settings.auth_jwks_json)

    async def static() -> dict[str, Any]:
        return document

    return static


def verifier_for(settings: VerifierSettings, *, fetch: JwksFetcher | None = None) -> TokenVerifier:
    """The verifier of every service: the settings' issuer, audience and cache, and keys from
    ``fetch`` (auth reads its own key ring) or else the settings' JWKS source."""
    return TokenVerifier(
        fetch or jwks_fetcher(settings),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        cache_seconds=settings.jwks_cache_seconds,
    )


class TokenVerifier:
    """Verifies access tokens; task-safe."""

    def __init__(
        self,
        fetch_jwks: JwksFetcher,
        *,
        issuer: str,
        audience: str,
        cache_seconds: float = 300,
        min_refetch_seconds: float = 5.0,
        leeway: int = 5,
    ) -> None:
        self._fetch = fetch_jwks
        self._issuer = issuer
        self._audience = audience
        self._cache_seconds = cache_seconds
        self._min_refetch = min_refetch_seconds
        self._leeway = leeway
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = 0.0
        # Every fetch, failed or not: a forged kid, or auth being down, costs one fetch per
        # ``min_refetch_seconds`` at most, not one (with its timeout) per request.
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()

    def _stale(self) -> bool:
        return not self._keys or time.monotonic() - self._fetched_at >= self._cache_seconds

    async def _refresh(self, *, force: bool) -> None:
        async with self._lock:
            now = time.monotonic()
            if not force and not self._stale():
                return  # another task refreshed while this one waited
            if self._attempted_at is not None and now - self._attempted_at < self._min_refetch:
                if self._keys:
                    return
                raise Unavailable("cannot verify tokens right now; try again shortly")
            self._attempted_at = now
            try:
                document = await self._fetch()
                keys = _parse_jwks(document)
            except Exception as exc:
                log.warning("JWKS fetch failed: %s: %s", type(exc).__name__, exc)
                if self._keys:
                    return  # keep serving with the keys we have
                raise Unavailable("cannot verify tokens right now; try again shortly") from exc
            self._keys = keys
            self._fetched_at = time.monotonic()

    async def _key_for(self, kid: str) -> jwt.PyJWK:
        if self._stale():
            await self._refresh(force=False)
        key = self._keys.get(kid)
        if key is None:
            await self._refresh(force=True)
            key = self._keys.get(kid)
        if key is None:
            raise Unauthorized("token signed by an unknown key")
        return key

    async def verify(self, token: str) -> AuthUser:
        """The user an access token names, or ``Unauthorized``."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized("malformed token") from exc
        if header.get("alg") not in ALGORITHMS:
            raise Unauthorized("token algorithm not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise Unauthorized("token has no key id")
        key = await self._key_for(kid)
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=ALGORITHMS,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("token expired", code="token_expired") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized("invalid token") from exc
        if claims.get("typ") != "access":
            raise Unauthorized("not an access token")
        try:
            role = claims.get("role")
            return AuthUser(
                id=int(claims["sub"]),
                username=str(claims["name"]),
                expires_at=int(claims["exp"]),
                role=role if isinstance(role, str) else None,
            )
        except (KeyError, ValueError) as exc:
            raise Unauthorized("token lacks its subject") from exc


def _parse_jwks(document: Any) -> dict[str, jwt.PyJWK]:
    """The usable Ed25519 keys of a JWKS document by kid; a malformed entry is skipped."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document")
    keys = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict) or entry.get("kty") != "OKP":
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or not kid:
            continue
        try:
            keys[kid] = jwt.PyJWK(entry, algorithm="EdDSA")
        except jwt.PyJWTError:
            log.warning("skipping an unusable JWKS entry %s", kid)
    return keys


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header, if any."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()
