"""Test helpers shared by the services' suites: throwaway MariaDB databases, Redis namespaces,
and a stand-in token signer for services that only verify tokens."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, text

from duochat_common.tokens import TokenVerifier

MYSQL_SERVER = os.environ.get("DUOCHAT_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306")
REDIS_URL = os.environ.get("DUOCHAT_TEST_REDIS", "redis://127.0.0.1:6379/0")


@contextmanager
def mariadb_database(prefix: str) -> Iterator[str]:
    """Create a uniquely named database, yield its URL, drop it afterwards."""
    name = f"t_{prefix}_{uuid.uuid4().hex[:10]}"
    server = create_engine(MYSQL_SERVER, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    try:
        yield f"{MYSQL_SERVER.replace('+pymysql', '')}/{name}"
    finally:
        with server.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        server.dispose()


def unique_prefix() -> str:
    """A Redis namespace of one test run."""
    return f"t{uuid.uuid4().hex[:10]}:"


class TestSigner:
    """Signs access tokens the way auth does, for suites that do not start auth."""

    __test__ = False  # not a pytest class

    def __init__(self, *, issuer: str = "duochat-auth", audience: str = "duochat") -> None:
        self.kid = uuid.uuid4().hex[:16]
        self.key = Ed25519PrivateKey.generate()
        self.issuer = issuer
        self.audience = audience

    def jwks(self) -> dict[str, Any]:
        jwk = jwt.algorithms.OKPAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "EdDSA"}]}

    def token(self, user_id: int, username: str, *, ttl: int = 900, **extra: Any) -> str:
        now = int(time.time())
        claims = {
            "sub": str(user_id),
            "name": username,
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "exp": now + ttl,
            "typ": "access",
            **extra,
        }
        return jwt.encode(claims, self.key, algorithm="EdDSA", headers={"kid": self.kid})

    def verifier(self) -> TokenVerifier:
        async def fetch() -> dict[str, Any]:
            return self.jwks()

        return TokenVerifier(fetch, issuer=self.issuer, audience=self.audience)
