"""What a deployment puts in the database URL reaches both drivers: the TLS CA (verified,
host name checked) and the pool ceilings the CDK stack derives from the task counts."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import ssl
import sys
from pathlib import Path
from types import ModuleType

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import create_engine

from duochat_common.db import Database, async_url, pool_limits, sync_url, tls_context

REPO = Path(__file__).resolve().parents[2]


def load_serve() -> ModuleType:
    serve_py = REPO / "deploy/docker/serve.py"
    spec = importlib.util.spec_from_file_location("duochat_serve_db", serve_py)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


serve = load_serve()


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test RDS CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(path)


def test_pool_ceilings_cap_what_the_code_asks_for() -> None:
    url = "mysql://u:p@db.example:3306/chat?pool_size=4&max_overflow=2"
    assert pool_limits(url) == {"pool_size": 4, "max_overflow": 2}
    capped = Database(url)  # the default 10 + 20
    assert capped.engine.pool.size() == 4  # type: ignore[attr-defined]
    assert capped.engine.pool._max_overflow == 2  # type: ignore[attr-defined]
    small = Database(url, pool_size=1, max_overflow=1)  # chat's writer keeps its own size
    assert small.engine.pool.size() == 1  # type: ignore[attr-defined]
    assert small.engine.pool._max_overflow == 1  # type: ignore[attr-defined]
    plain = Database("mysql://u:p@db.example:3306/chat")
    assert plain.engine.pool.size() == 10  # type: ignore[attr-defined]
    # Neither driver sees the pool keys.
    for driver_url in (async_url(url), sync_url(url)):
        assert "pool_size" not in driver_url.query and "max_overflow" not in driver_url.query


def test_the_ca_reaches_both_drivers_and_is_verified(ca_file: str) -> None:
    url = f"mysql://u:p@db.example:3306/chat?ssl_ca={ca_file}"
    context = tls_context(url)
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.get_ca_certs()[0]["subject"] == ((("commonName", "test RDS CA"),),)
    # aiomysql takes an SSLContext (connect_args); PyMySQL gets ssl_ca through SQLAlchemy.
    assert "ssl_ca" not in async_url(url).query
    assert sync_url(url).query["ssl_ca"] == ca_file
    # ...which SQLAlchemy hands PyMySQL as its ssl dict (a verifying context, host name on).
    migrations = create_engine(sync_url(url))
    _, kwargs = migrations.dialect.create_connect_args(migrations.url)
    assert kwargs["ssl"] == {"ca": ca_file}
    assert tls_context("mysql://u:p@db.example/chat") is None
    assert tls_context("sqlite:///x.db") is None


def test_the_entrypoint_puts_ca_and_pools_in_the_url(ca_file: str) -> None:
    secret = json.dumps({"username": "chat", "password": "pw", "host": "h", "port": 3306})
    env = {
        "DB_SECRET": secret,
        "DB_NAME": "chat",
        "DB_POOL_SIZE": "8",
        "DB_MAX_OVERFLOW": "5",
        "DB_TLS_CA_FILE": ca_file,
    }
    ca = serve.tls_ca_file(env)
    assert ca == ca_file
    url = serve.assemble_env(env, ca_file=ca)["DUOCHAT_DATABASE_URL"]
    assert pool_limits(url) == {"pool_size": 8, "max_overflow": 5}
    assert tls_context(url) is not None
    assert sync_url(url).query["ssl_ca"] == ca_file
    # Without a CA or pools the URL is what it always was (docker compose, local services).
    assert serve.assemble_env({"DB_SECRET": secret, "DB_NAME": "chat"}) == {
        "DUOCHAT_DATABASE_URL": "mysql+aiomysql://chat:pw@h:3306/chat"
    }


def test_the_ca_is_fetched_only_over_https(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="https"):
        serve.tls_ca_file({"DB_TLS_CA_URL": "http://example.com/ca.pem"})
    cached = tmp_path / "ca.pem"
    cached.write_text("-----BEGIN CERTIFICATE-----\n")
    # Already fetched (a restart of the same task): no network.
    assert serve.tls_ca_file(
        {"DB_TLS_CA_URL": "https://example.invalid/ca.pem", "DB_TLS_CA_DOWNLOAD_PATH": str(cached)}
    ) == str(cached)
    assert serve.tls_ca_file({}) is None
