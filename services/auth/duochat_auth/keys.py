"""The token-signing key ring: auth alone signs access tokens (EdDSA / Ed25519)."""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from duochat_auth.models import SigningKey

PEM_END = "-----END PRIVATE KEY-----"


@dataclass(frozen=True, slots=True)
class Key:
    kid: str
    private: Ed25519PrivateKey

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()


def _kid_of(private: Ed25519PrivateKey) -> str:
    raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return hashlib.sha256(raw).hexdigest()[:16]


def parse_pem_keys(pem_text: str) -> list[Key]:
    """Every Ed25519 key in a PEM bundle, in order."""
    keys = []
    for block in pem_text.split(PEM_END):
        if "BEGIN PRIVATE KEY" not in block:
            continue
        loaded = serialization.load_pem_private_key((block + PEM_END).encode(), password=None)
        if not isinstance(loaded, Ed25519PrivateKey):
            raise ValueError("DUOCHAT_JWT_PRIVATE_KEY must hold Ed25519 keys")
        keys.append(Key(kid=_kid_of(loaded), private=loaded))
    return keys


def generate_pem() -> str:
    """A new Ed25519 private key as PEM (for operators: ``python -m duochat_auth.keys``)."""
    return (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )


class KeyRing:
    """Signs with the first key, publishes all of them."""

    def __init__(self, keys: list[Key]) -> None:
        if not keys:
            raise ValueError("no signing key")
        self.keys = keys

    @property
    def current(self) -> Key:
        return self.keys[0]

    def sign_access_token(
        self,
        *,
        user_id: int,
        username: str,
        issuer: str,
        audience: str,
        ttl: int,
        role: str | None = None,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": str(user_id),
            "name": username,
            "iss": issuer,
            "aud": audience,
            "iat": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
            "typ": "access",
        }
        if role is not None:
            claims["role"] = role
        return jwt.encode(
            claims, self.current.private, algorithm="EdDSA", headers={"kid": self.current.kid}
        )

    def jwks(self) -> dict[str, Any]:
        out = []
        for key in self.keys:
            jwk = jwt.algorithms.OKPAlgorithm.to_jwk(key.public, as_dict=True)
            out.append({**jwk, "kid": key.kid, "use": "sig", "alg": "EdDSA"})
        return {"keys": out}


async def load_key_ring(*, session: AsyncSession, configured_pem: str) -> KeyRing:
    """Configured keys, or (development) the stored generated key, created on first start."""
    if configured_pem.strip():
        return KeyRing(parse_pem_keys(configured_pem))
    rows = (
        await session.scalars(select(SigningKey).order_by(SigningKey.created_at, SigningKey.kid))
    ).all()
    if not rows:
        pem = generate_pem()
        key = parse_pem_keys(pem)[0]
        session.add(SigningKey(kid=key.kid, private_pem=pem, created_at=datetime.now(UTC)))
        try:
            await session.commit()
        except Exception:  # another instance created it first
            await session.rollback()
        rows = (
            await session.scalars(
                select(SigningKey).order_by(SigningKey.created_at, SigningKey.kid)
            )
        ).all()
    return KeyRing([k for row in rows for k in parse_pem_keys(row.private_pem)])


if __name__ == "__main__":
    print(generate_pem(), end="")
