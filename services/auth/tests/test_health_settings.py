"""Health routes, production refusals and the demo accounts."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError

from duochat_auth.config import Settings
from duochat_auth.keys import generate_pem

from .conftest import Api, Serve, SettingsFactory


async def test_healthz_answers_without_io(api: Api) -> None:
    response = await api.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_checks_database_and_redis(api: Api) -> None:
    response = await api.client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}


async def test_readyz_is_503_naming_redis_when_it_is_down(
    make_settings: SettingsFactory, serve: Serve
) -> None:
    async with serve(make_settings(redis_url="redis://127.0.0.1:1")) as api:
        assert (await api.client.get("/healthz")).status_code == 200
        response = await api.client.get("/readyz")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "unavailable"
        assert body["checks"]["database"] == "ok"
        assert body["checks"]["redis"].startswith("fail")


async def test_readyz_is_503_naming_the_database_when_it_is_down(
    make_settings: SettingsFactory, serve: Serve
) -> None:
    settings = make_settings(
        database_url="mysql://root@127.0.0.1:1/nowhere", jwt_private_key=generate_pem()
    )
    async with serve(settings, isolated=False) as api:
        response = await api.client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["checks"]["database"].startswith("fail")
        assert response.json()["checks"]["redis"] == "ok"


async def test_login_while_redis_is_down_is_not_a_crash(
    make_settings: SettingsFactory, serve: Serve
) -> None:
    async with serve(make_settings(redis_url="redis://127.0.0.1:1")) as api:
        response = await api.client.post(
            "/auth/login", json={"username": "someone", "password": "something long"}
        )
        assert response.status_code == 503
        assert response.json()["code"] == "unavailable"


BROKEN_PEM = "-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n"
RSA_PEM = (
    rsa.generate_private_key(public_exponent=65537, key_size=2048)
    .private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    .decode()
)

SAFE_PRODUCTION: dict[str, Any] = {
    "environment": "production",
    "database_url": "mysql://duochat:s3cret@db.internal/auth",
    "redis_url": "redis://cache.internal:6379/0",
    "jwt_private_key": generate_pem(),
}


def test_a_safe_production_configuration_starts() -> None:
    settings = Settings(**SAFE_PRODUCTION)
    assert settings.production_problems() == []


@pytest.mark.parametrize(
    ("override", "mentions"),
    [
        ({"demo_accounts": True}, "DEMO_ACCOUNTS"),
        ({"database_url": "sqlite:///./data/auth.db"}, "SQLite"),
        ({"redis_url": "memory://embedded"}, "real Redis"),
        ({"jwt_private_key": ""}, "JWT_PRIVATE_KEY"),
        ({"jwt_private_key": "   \n"}, "JWT_PRIVATE_KEY"),
        ({"jwt_private_key": "not a pem"}, "JWT_PRIVATE_KEY"),
        ({"jwt_private_key": BROKEN_PEM}, "JWT_PRIVATE_KEY"),
        ({"jwt_private_key": RSA_PEM}, "JWT_PRIVATE_KEY"),
        ({"database_url": "mysql://duochat:dev-only@db/auth"}, "default password"),
        ({"password_time_cost": 1}, "PASSWORD_TIME_COST"),
        ({"password_memory_kib": 1024}, "PASSWORD_MEMORY_KIB"),
        # Issue 12, finding 15: plain-text connections only inside a private network.
        ({"auth_jwks_url": "http://auth.example.com/auth/.well-known/jwks.json"}, "JWKS_URL"),
        ({"auth_jwks_url": "http://93.184.216.34/auth/.well-known/jwks.json"}, "JWKS_URL"),
        ({"redis_url": "redis://cache.example.com:6379/0"}, "REDIS_URL"),
        ({"trusted_proxies": "10.0.0.0/33"}, "trusted_proxies"),
    ],
)
def test_production_refuses_unsafe_settings(override: dict[str, Any], mentions: str) -> None:
    with pytest.raises(ValidationError, match=mentions):
        Settings(**{**SAFE_PRODUCTION, **override})


@pytest.mark.parametrize(
    "override",
    [
        {"auth_jwks_url": "http://auth:8001/auth/.well-known/jwks.json"},  # a compose name
        {"auth_jwks_url": "http://10.0.3.7:8001/auth/.well-known/jwks.json"},
        {"auth_jwks_url": "https://duochat.example.com/auth/.well-known/jwks.json"},
        {"redis_url": "redis://redis:6379/0"},
        {"redis_url": "rediss://:token@cache.example.com:6379/0"},
    ],
)
def test_production_allows_plain_text_inside_a_private_network(override: dict[str, Any]) -> None:
    assert Settings(**{**SAFE_PRODUCTION, **override}).production_problems() == []


@pytest.mark.parametrize(
    "override",
    [
        {"access_token_ttl_seconds": 10**9},
        {"refresh_token_ttl_seconds": 10**9},
        {"login_failure_window_seconds": 10**9},
        {"login_delay_max_seconds": 10**9},
    ],
)
def test_lifetimes_and_windows_are_bounded_in_every_environment(override: dict[str, Any]) -> None:
    # Issue 12, finding 15: TTLs of 10^9 s were accepted, even in production.
    with pytest.raises(ValidationError):
        Settings(**override)


def test_production_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUOCHAT_ENVIRONMENT", "production")
    with pytest.raises(ValidationError, match="unsafe production settings"):
        Settings()


def test_development_defaults_are_allowed() -> None:
    settings = Settings(demo_accounts=True)
    assert settings.environment == "development"
    assert settings.production_problems()  # they would be refused in production


async def test_demo_accounts_are_seeded_once(
    make_settings: SettingsFactory, serve: Serve, fresh_database_url: str
) -> None:
    settings = make_settings(database_url=fresh_database_url, demo_accounts=True)
    for _start in range(2):  # a restart seeds nothing twice
        async with serve(settings, isolated=False) as api:
            for name in ("happydaddy", "angrydaddy"):
                response = await api.client.post(
                    "/auth/login", json={"username": name, "password": "1234"}
                )
                assert response.status_code == 200, response.text
                me = await api.me(response.json()["accessToken"])
                assert me.json()["username"] == name


async def test_demo_accounts_do_not_exist_unless_asked(api: Api) -> None:
    response = await api.client.post(
        "/auth/login", json={"username": "happydaddy", "password": "1234"}
    )
    assert response.status_code == 401
