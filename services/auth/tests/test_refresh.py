"""POST /auth/refresh and /auth/logout: rotation, reuse detection, revocation."""

from __future__ import annotations

import asyncio

import httpx

from .conftest import Api, Serve, SettingsFactory


async def test_refresh_rotates_the_pair(api: Api) -> None:
    account = await api.signed_in()
    response = await api.refresh(account.refresh)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"accessToken", "refreshToken", "tokenType", "expiresIn"}
    assert body["tokenType"] == "bearer"
    assert body["refreshToken"] != account.refresh
    me = await api.me(body["accessToken"])
    assert me.json() == {"id": account.id, "username": account.username}
    # and the new refresh token rotates again
    again = await api.refresh(body["refreshToken"])
    assert again.status_code == 200


async def test_reusing_an_old_refresh_token_revokes_the_family(api: Api) -> None:
    account = await api.signed_in()
    newer = (await api.refresh(account.refresh)).json()["refreshToken"]

    reused = await api.refresh(account.refresh)
    assert reused.status_code == 401
    assert reused.json()["code"] == "refresh_token_reused"
    # the token the thief (or the owner) got next stops working too
    after = await api.refresh(newer)
    assert after.status_code == 401
    assert after.json()["code"] == "invalid_refresh_token"


async def test_reuse_revokes_only_that_sign_in(api: Api) -> None:
    account = await api.signed_in()
    other_session = (await api.login(account)).json()["refreshToken"]
    await api.refresh(account.refresh)
    assert (await api.refresh(account.refresh)).status_code == 401
    assert (await api.refresh(other_session)).status_code == 200


async def test_unknown_and_malformed_refresh_tokens_are_401(api: Api) -> None:
    for token in ("nope", "x" * 512, "../../etc/passwd", "' OR 1=1 --"):
        response = await api.refresh(token)
        assert response.status_code == 401, token
        assert response.json()["code"] == "invalid_refresh_token"


async def test_an_access_token_is_not_a_refresh_token(api: Api) -> None:
    account = await api.signed_in()
    response = await api.refresh(account.access)
    assert response.status_code in (401, 422)  # 422 when it exceeds the field's length


async def test_an_expired_refresh_token_is_401(
    make_settings: SettingsFactory, serve: Serve
) -> None:
    async with serve(make_settings(refresh_token_ttl_seconds=-1)) as api:
        account = await api.signed_in()
        response = await api.refresh(account.refresh)
        assert response.status_code == 401
        assert response.json()["code"] == "invalid_refresh_token"


async def test_logout_is_204_and_then_refresh_fails(api: Api) -> None:
    account = await api.signed_in()
    rotated = (await api.refresh(account.refresh)).json()["refreshToken"]
    response = await api.client.post("/auth/logout", json={"refreshToken": rotated})
    assert response.status_code == 204
    assert response.content == b""
    assert (await api.refresh(rotated)).status_code == 401
    assert (await api.refresh(account.refresh)).status_code == 401


async def test_logout_with_an_unknown_token_is_still_204(api: Api) -> None:
    response = await api.client.post("/auth/logout", json={"refreshToken": "never issued"})
    assert response.status_code == 204


async def test_logout_twice_is_fine(api: Api) -> None:
    account = await api.signed_in()
    for _ in range(2):
        response = await api.client.post("/auth/logout", json={"refreshToken": account.refresh})
        assert response.status_code == 204


async def test_concurrent_double_refresh_lets_exactly_one_through(
    make_settings: SettingsFactory, serve: Serve, fresh_database_url: str
) -> None:
    # Real concurrency needs several connections, so this test has a database of its own.
    async with serve(make_settings(database_url=fresh_database_url), isolated=False) as api:
        for _ in range(5):
            account = await api.signed_in()
            first, second = await asyncio.gather(
                api.refresh(account.refresh), api.refresh(account.refresh)
            )
            statuses = sorted([first.status_code, second.status_code])
            assert statuses == [200, 401], (first.text, second.text)
            loser = first if first.status_code == 401 else second
            winner = first if first.status_code == 200 else second
            assert loser.json()["code"] == "refresh_token_reused"
            # A race is indistinguishable from theft, so the whole sign-in ends; the web client
            # serialises its refreshes for this reason.
            assert (await api.refresh(winner.json()["refreshToken"])).status_code == 401


# Issue 12, finding 11: a browser keeps its refresh token in an HttpOnly cookie.
COOKIE_MODE = {"X-Duochat-Token-Transport": "cookie"}


def _refresh_cookie(response: httpx.Response) -> tuple[str, str]:
    """The refresh cookie's value and its attributes, as the Set-Cookie header has them."""
    header = next(h for h in response.headers.get_list("set-cookie") if "duochat_refresh=" in h)
    value = header.split("duochat_refresh=", 1)[1].split(";", 1)[0].strip('"')
    return value, header.lower()


async def test_a_browser_sign_in_puts_the_refresh_token_in_a_strict_cookie(api: Api) -> None:
    account = await api.register()
    response = await api.login(account, headers=COOKIE_MODE)
    assert response.status_code == 200
    assert "refreshToken" not in response.json()  # script never sees it
    value, attributes = _refresh_cookie(response)
    assert len(value) > 30
    for attribute in ("httponly", "secure", "samesite=strict", "path=/auth"):
        assert attribute in attributes
    assert f"max-age={api.settings.refresh_token_ttl_seconds}" in attributes


async def test_the_cookie_rotates_and_never_lands_in_a_body(api: Api) -> None:
    account = await api.register()
    first, _ = _refresh_cookie(await api.login(account, headers=COOKIE_MODE))
    api.client.cookies.clear()
    rotated = await api.client.post(
        "/auth/refresh", json={}, headers={"Cookie": f"duochat_refresh={first}"}
    )
    assert rotated.status_code == 200, rotated.text
    assert "refreshToken" not in rotated.json()
    second, _ = _refresh_cookie(rotated)
    assert second != first
    assert (await api.me(rotated.json()["accessToken"])).status_code == 200
    # the spent cookie is reuse, and revokes the sign-in
    reused = await api.client.post("/auth/refresh", headers={"Cookie": f"duochat_refresh={first}"})
    assert reused.status_code == 401
    assert reused.json()["code"] == "refresh_token_reused"


async def test_no_token_anywhere_is_401(api: Api) -> None:
    api.client.cookies.clear()
    for kwargs in ({}, {"json": {}}):
        response = await api.client.post("/auth/refresh", **kwargs)  # type: ignore[arg-type]
        assert response.status_code == 401
        assert response.json()["code"] == "invalid_refresh_token"


async def test_logout_revokes_the_cookie_and_clears_it(api: Api) -> None:
    account = await api.register()
    token, _ = _refresh_cookie(await api.login(account, headers=COOKIE_MODE))
    api.client.cookies.clear()
    out = await api.client.post("/auth/logout", headers={"Cookie": f"duochat_refresh={token}"})
    assert out.status_code == 204
    cleared = next(h for h in out.headers.get_list("set-cookie") if "duochat_refresh=" in h)
    assert "max-age=0" in cleared.lower()
    again = await api.client.post("/auth/refresh", headers={"Cookie": f"duochat_refresh={token}"})
    assert again.status_code == 401
