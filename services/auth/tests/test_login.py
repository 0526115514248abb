"""POST /auth/login: the token pair, 401 on a wrong password, failed-login rate limits."""

from __future__ import annotations

from collections.abc import AsyncIterator

import jwt
import pytest

from .conftest import Api, Serve, SettingsFactory, new_name


async def test_login_returns_a_token_pair(api: Api) -> None:
    account = await api.register()
    response = await api.login(account)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"accessToken", "refreshToken", "tokenType", "expiresIn"}
    assert body["tokenType"] == "bearer"
    assert body["expiresIn"] == api.settings.access_token_ttl_seconds
    claims = jwt.decode(body["accessToken"], options={"verify_signature": False})
    assert claims["sub"] == str(account.id)
    assert claims["name"] == account.username
    assert claims["typ"] == "access"
    assert claims["exp"] - claims["iat"] == api.settings.access_token_ttl_seconds
    assert jwt.get_unverified_header(body["accessToken"])["alg"] == "EdDSA"
    assert body["refreshToken"] != body["accessToken"]
    me = await api.me(body["accessToken"])
    assert me.json() == {"id": account.id, "username": account.username}


async def test_each_login_is_a_new_pair(api: Api) -> None:
    account = await api.register()
    first = (await api.login(account)).json()
    second = (await api.login(account)).json()
    assert first["refreshToken"] != second["refreshToken"]
    assert first["accessToken"] != second["accessToken"]


async def test_a_wrong_password_is_401(api: Api) -> None:
    account = await api.register()
    account.password = "not the password"
    response = await api.login(account)
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_credentials"
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_an_unknown_user_is_the_same_401(api: Api) -> None:
    response = await api.client.post(
        "/auth/login", json={"username": new_name(), "password": "whatever it is"}
    )
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_credentials"


@pytest.fixture
async def limited(make_settings: SettingsFactory, serve: Serve) -> AsyncIterator[Api]:
    settings = make_settings(
        login_max_failures_per_name=3,
        login_max_failures_per_address=5,
        login_failure_window_seconds=60,
    )
    async with serve(settings) as api:
        yield api


async def _fail(api: Api, username: str, address: str = "203.0.113.9") -> int:
    response = await api.client.post(
        "/auth/login",
        json={"username": username, "password": "wrong password"},
        headers={"X-Forwarded-For": address},
    )
    return response.status_code


async def test_failed_logins_are_limited_per_name(limited: Api) -> None:
    account = await limited.register()
    for _ in range(3):
        assert await _fail(limited, account.username) == 401
    # even the right password is refused until the window passes
    response = await limited.login(account, headers={"X-Forwarded-For": "198.51.100.1"})
    assert response.status_code == 429
    assert response.json()["code"] == "rate_limited"
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    # the limit is per name: another account from the same address signs in
    other = await limited.register()
    assert (await limited.login(other, headers={"X-Forwarded-For": "203.0.113.9"})).status_code == (
        200
    )


async def test_the_name_counter_ignores_case(limited: Api) -> None:
    account = await limited.register()
    for variant in (account.username.upper(), account.username, account.username.title()):
        assert await _fail(limited, variant, address="198.51.100.7") == 401
    assert (await limited.login(account)).status_code == 429


async def test_failed_logins_are_limited_per_address(limited: Api) -> None:
    for _ in range(5):  # five different names, one address
        assert await _fail(limited, new_name(), address="192.0.2.77") == 401
    account = await limited.register()
    blocked = await limited.login(account, headers={"X-Forwarded-For": "192.0.2.77"})
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) >= 1
    # the same user from another address is fine
    elsewhere = await limited.login(account, headers={"X-Forwarded-For": "192.0.2.78"})
    assert elsewhere.status_code == 200


async def test_the_address_is_the_last_forwarded_hop(limited: Api) -> None:
    # A client can put anything first; the proxy appends the address it saw last.
    for n in range(5):
        assert await _fail(limited, new_name(), address=f"10.9.9.{n}, 192.0.2.99") == 401
    account = await limited.register()
    response = await limited.login(account, headers={"X-Forwarded-For": "10.0.0.1, 192.0.2.99"})
    assert response.status_code == 429


async def test_success_resets_the_name_counter(limited: Api) -> None:
    account = await limited.register()
    for _round in range(3):
        for _ in range(2):  # one short of the limit of 3
            assert await _fail(limited, account.username, address=f"198.51.100.{_round}") == 401
        assert (await limited.login(account)).status_code == 200
    assert await _fail(limited, account.username) == 401


async def test_counters_live_in_the_app_namespace(limited: Api) -> None:
    account = await limited.register()
    assert await _fail(limited, account.username) == 401
    prefix = limited.settings.redis_prefix
    keys = [k async for k in limited.app.state.redis.scan_iter(match=f"{prefix}auth:*")]
    assert keys and all(k.startswith(prefix) for k in keys)
    ttl = await limited.app.state.redis.ttl(keys[0])
    assert 0 < ttl <= 60
