"""Test helpers shared by the services' suites: throwaway MariaDB databases, Redis namespaces,
and a stand-in token signer for services that only verify tokens."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, text

from duochat_common.tokens import TokenVerifier

MYSQL_SERVER = os.environ.get("DUOCHAT_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306")
REDIS_URL = os.environ.get("DUOCHAT_TEST_REDIS", "redis://127.0.0.1:6379/0")
# A node of the local Redis Cluster that ``.ci/redis-cluster`` starts. When the variable is set
# the cluster must answer; when it is not, the default is used if something listens there.
REDIS_CLUSTER_URL = os.environ.get("DUOCHAT_TEST_REDIS_CLUSTER_URL", "")
_DEFAULT_CLUSTER_URL = "redis://127.0.0.1:7001/0"


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


def redis_cluster_url() -> str | None:
    """The test Redis Cluster's URL, or None when none is configured or running."""
    if REDIS_CLUSTER_URL:
        return REDIS_CLUSTER_URL
    where = urlsplit(_DEFAULT_CLUSTER_URL)
    try:
        with socket.create_connection((where.hostname or "", where.port or 0), timeout=0.3):
            return _DEFAULT_CLUSTER_URL
    except OSError:
        return None


REDIS_SHAPES = ("redis", "cluster")


def redis_shape_url(shape: str) -> tuple[str, bool] | None:
    """``(url, cluster)`` of a test Redis of that shape (``REDIS_SHAPES``), or None if absent."""
    if shape == "redis":
        return REDIS_URL, False
    if shape == "cluster":
        url = redis_cluster_url()
        return None if url is None else (url, True)
    raise ValueError(f"unknown redis shape {shape!r}")
