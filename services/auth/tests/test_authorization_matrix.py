"""Every auth endpoint against an anonymous caller, another user, and the owner.

auth's resources are the caller's identity (``/auth/me``) and a sign-in's refresh-token family
(``/auth/refresh``, ``/auth/logout``). A refresh token is its own credential: whoever holds it
acts for its owner, and a bearer header can never redirect that to someone else's account.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest

from .conftest import Account, Api, new_name

CALLERS = ("anonymous", "other", "owner")


@dataclass
class Scene:
    api: Api
    owner: Account
    other: Account

    def headers(self, caller: str) -> dict[str, str]:
        if caller == "anonymous":
            return {}
        return (self.owner if caller == "owner" else self.other).headers

    async def identity(self, access_token: str) -> str:
        response = await self.api.me(access_token)
        assert response.status_code == 200
        name: str = response.json()["username"]
        return name


@pytest.fixture
async def scene(api: Api) -> Scene:
    return Scene(api=api, owner=await api.signed_in(), other=await api.signed_in())


@pytest.mark.parametrize("caller", CALLERS)
async def test_me(scene: Scene, caller: str) -> None:
    response = await scene.api.client.get("/auth/me", headers=scene.headers(caller))
    if caller == "anonymous":
        assert response.status_code == 401
        return
    account = scene.owner if caller == "owner" else scene.other
    assert response.status_code == 200
    assert response.json() == {"id": account.id, "username": account.username}


@pytest.mark.parametrize("caller", CALLERS)
async def test_refresh_of_the_owners_sign_in(scene: Scene, caller: str) -> None:
    response = await scene.api.client.post(
        "/auth/refresh", json={"refreshToken": scene.owner.refresh}, headers=scene.headers(caller)
    )
    assert response.status_code == 200
    # whoever sends it, the new pair is the owner's and never the caller's
    assert await scene.identity(response.json()["accessToken"]) == scene.owner.username


@pytest.mark.parametrize("caller", CALLERS)
async def test_an_access_token_cannot_refresh(scene: Scene, caller: str) -> None:
    # another user's (or one's own) access token is no refresh token
    account = scene.other if caller == "other" else scene.owner
    response = await scene.api.client.post(
        "/auth/refresh", json={"refreshToken": account.access}, headers=scene.headers(caller)
    )
    assert response.status_code in (401, 422)


@pytest.mark.parametrize("caller", CALLERS)
async def test_logout_ends_only_the_sign_in_of_that_token(scene: Scene, caller: str) -> None:
    response = await scene.api.client.post(
        "/auth/logout", json={"refreshToken": scene.owner.refresh}, headers=scene.headers(caller)
    )
    assert response.status_code == 204
    assert (await scene.api.refresh(scene.owner.refresh)).status_code == 401
    # the caller's own sign-in is untouched
    assert (await scene.api.refresh(scene.other.refresh)).status_code == 200


@pytest.mark.parametrize("caller", CALLERS)
async def test_register_is_public_and_creates_only_the_named_account(
    scene: Scene, caller: str
) -> None:
    name = new_name()
    response = await scene.api.client.post(
        "/auth/register",
        json={"username": name, "password": "a fine password"},
        headers=scene.headers(caller),
    )
    assert response.status_code == 201
    assert response.json()["username"] == name
    # nobody can re-register the owner's name to take it over
    taken = await scene.api.client.post(
        "/auth/register",
        json={"username": scene.owner.username, "password": "a fine password"},
        headers=scene.headers(caller),
    )
    assert taken.status_code == 409


@pytest.mark.parametrize("caller", CALLERS)
async def test_login_needs_the_owners_password_whoever_calls(scene: Scene, caller: str) -> None:
    wrong = await scene.api.client.post(
        "/auth/login",
        json={"username": scene.owner.username, "password": scene.other.password + "x"},
        headers=scene.headers(caller),
    )
    assert wrong.status_code == 401
    right = await scene.api.login(scene.owner, headers=scene.headers(caller))
    assert right.status_code == 200
    assert await scene.identity(right.json()["accessToken"]) == scene.owner.username


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("path", ["/auth/.well-known/jwks.json", "/healthz", "/readyz"])
async def test_public_reads(scene: Scene, caller: str, path: str) -> None:
    response = await scene.api.client.get(path, headers=scene.headers(caller))
    assert response.status_code == 200


async def test_every_route_is_in_the_matrix(api: Api) -> None:
    """A new auth route fails this test until it is added above."""
    covered = {
        ("get", "/auth/me"),
        ("post", "/auth/refresh"),
        ("post", "/auth/logout"),
        ("post", "/auth/register"),
        ("post", "/auth/login"),
        ("get", "/auth/.well-known/jwks.json"),
    }
    document = (await api.client.get("/openapi.json")).json()
    routes = {(method, path) for path, item in document["paths"].items() for method in item}
    assert routes == covered


async def test_unknown_paths_and_methods_are_json_errors(api: Api) -> None:
    missing = await api.client.get("/auth/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"
    wrong_method = await api.client.delete("/auth/me")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["code"] == "method_not_allowed"
    assert "GET" in wrong_method.headers["Allow"]
    assert isinstance(api.client, httpx.AsyncClient)
