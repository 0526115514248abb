"""Access-token verification against auth's JWKS, fetched and cached, with key rotation.

Only auth signs tokens (EdDSA). Every other service holds a ``TokenVerifier`` that knows the
public keys by ``kid``. An unknown ``kid`` triggers one refetch (at most every few seconds), so a
rotated key is picked up without a restart, and a forged ``kid`` cannot hammer auth.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from duochat_common.errors import Unauthorized

ALGORITHMS = ["EdDSA"]
JwksFetcher = Callable[[], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class AuthUser:
    """The authenticated caller, as the access token names them."""

    id: int
    username: str


def http_jwks_fetcher(url: str, *, timeout: float = 5.0) -> JwksFetcher:
    """Fetch the JWKS document over HTTP."""

    async def fetch() -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=timeout) as client:
            response = await client.get(url)
            response.raise_for_status()
            data: dict[str, Any] = response.json()
            return data

    return fetch


class TokenVerifier:
    """Verifies access tokens; thread- and task-safe."""

    def __init__(
        self,
        fetch_jwks: JwksFetcher,
        *,
        issuer: str,
        audience: str,
        cache_seconds: int = 300,
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
        self._lock = asyncio.Lock()

    async def _refresh(self, *, force: bool) -> None:
        async with self._lock:
            age = time.monotonic() - self._fetched_at
            if self._keys and age < (self._min_refetch if force else self._cache_seconds):
                return
            try:
                document = await self._fetch()
            except Exception as exc:
                if self._keys:
                    return  # keep serving with the keys we have
                raise Unauthorized("cannot verify tokens right now") from exc
            keys = {}
            for entry in document.get("keys", []):
                if entry.get("kty") == "OKP" and entry.get("kid"):
                    keys[entry["kid"]] = jwt.PyJWK(entry, algorithm="EdDSA")
            self._keys = keys
            self._fetched_at = time.monotonic()

    async def _key_for(self, kid: str) -> jwt.PyJWK:
        if time.monotonic() - self._fetched_at > self._cache_seconds or not self._keys:
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
            return AuthUser(id=int(claims["sub"]), username=str(claims["name"]))
        except (KeyError, ValueError) as exc:
            raise Unauthorized("token lacks its subject") from exc


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header, if any."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()
