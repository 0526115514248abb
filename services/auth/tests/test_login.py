"""POST /auth/login: the token pair, 401 on a wrong password, failed-login limits: a growing delay
per account (whatever spelling found it) and a window per client address, where X-Forwarded-For
counts only from a trusted proxy."""

from __future__ import annotations

import asyncio
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
        login_delay_base_seconds=0.3,
        login_delay_max_seconds=30,
        login_max_failures_per_address=5,
        login_failure_window_seconds=60,
        # the in-process client connects from 127.0.0.1: it plays the gateway here
        trusted_proxies="127.0.0.1",
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


async def test_failed_logins_slow_the_account_down(limited: Api) -> None:
    account = await limited.register()
    for _ in range(3):
        assert await _fail(limited, account.username) == 401
    # right after the third failure even the right password waits its turn
    response = await limited.login(account, headers={"X-Forwarded-For": "198.51.100.1"})
    assert response.status_code == 429
    assert response.json()["code"] == "rate_limited"
    assert int(response.headers["Retry-After"]) == 1
    # the delay is per account: another account from the same address signs in
    other = await limited.register()
    assert (await limited.login(other, headers={"X-Forwarded-For": "203.0.113.9"})).status_code == (
        200
    )


async def test_the_owner_is_slowed_down_not_locked_out(limited: Api) -> None:
    # Issue 12, finding 4: five wrong passwords used to lock the owner out for the whole window.
    account = await limited.register()
    for n in range(3):
        assert await _fail(limited, account.username, address=f"203.0.113.{n}") == 401
    await asyncio.sleep(0.4)  # the first delay (0.3 s) has passed
    assert (await limited.login(account)).status_code == 200


async def test_each_further_failure_doubles_the_delay(limited: Api) -> None:
    account = await limited.register()
    limiter = limited.app.state.limiter
    for n in range(3):
        assert await _fail(limited, account.username, address=f"192.0.2.{n}") == 401
    assert limiter.delay_after(3) == 0.3
    for n in range(3):  # each from a new address: the address window is not what stops them
        await asyncio.sleep(limiter.delay_after(3 + n) + 0.15)
        assert await _fail(limited, account.username, address=f"198.51.100.{n}") == 401
    assert [limiter.delay_after(n) for n in (4, 5, 6)] == [0.6, 1.2, 2.4]
    refused = await limited.login(account)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) in (1, 2, 3)  # what is left of 2.4 s
    assert limited.app.state.limiter.delay_after(40) == 30  # capped


async def test_every_spelling_of_a_name_counts_against_its_account(limited: Api) -> None:
    # Issue 12, finding 4: the counter was keyed on the typed name lower-cased, while MariaDB
    # matched "name " and accent variants to the same user, so those guessed on without limit.
    account = await limited.register()
    variants = [account.username.upper(), f"{account.username} ", account.username.title()]
    for variant in variants:
        assert await _fail(limited, variant, address="198.51.100.7") == 401
    assert (await limited.login(account)).status_code == 429


async def test_a_lookalike_name_finds_no_account(limited: Api) -> None:
    account = await limited.register(f"happ{new_name()}")
    accented = account.username.replace("a", "\u00e2", 1)
    response = await limited.client.post(
        "/auth/login", json={"username": accented, "password": account.password}
    )
    assert response.status_code == 401


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


async def test_forwarded_for_is_ignored_from_an_untrusted_peer(
    make_settings: SettingsFactory, serve: Serve
) -> None:
    # Issue 12, finding 2: a client talking to the service directly rotated X-Forwarded-For and
    # was never counted. By default no proxy is trusted, so the peer address is what counts.
    settings = make_settings(login_max_failures_per_address=5, login_failure_window_seconds=60)
    async with serve(settings) as api:
        for n in range(5):
            assert await _fail(api, new_name(), address=f"198.51.100.{n}") == 401
        account = await api.register()
        response = await api.login(account, headers={"X-Forwarded-For": "192.0.2.200"})
        assert response.status_code == 429
        assert "address" in response.json()["message"]


async def test_success_resets_the_account_counter(limited: Api) -> None:
    account = await limited.register()
    for _round in range(3):
        for _ in range(2):  # one short of the free 3
            assert await _fail(limited, account.username, address=f"198.51.100.{_round}") == 401
        assert (await limited.login(account)).status_code == 200
    assert await _fail(limited, account.username) == 401


async def test_counters_live_in_the_app_namespace(limited: Api) -> None:
    account = await limited.register()
    assert await _fail(limited, account.username) == 401
    prefix = limited.settings.redis_prefix
    keys = [k async for k in limited.app.state.redis.scan_iter(match=f"{prefix}auth:loginfail:*")]
    assert keys and all(k.startswith(prefix) for k in keys)
    ttl = await limited.app.state.redis.ttl(keys[0])
    assert 0 < ttl <= 60
