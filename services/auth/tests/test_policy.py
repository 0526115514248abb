"""Registration rules answer with a code per rule (no validator text), every problem at once;
the common-password list is the shipped one; operators get the ``role`` claim."""

from __future__ import annotations

import jwt

from duochat_auth.policy import common_passwords

from .conftest import PASSWORD, Api, Serve, SettingsFactory, new_name


def test_the_shipped_list_holds_the_10000_most_common_passwords() -> None:
    words = common_passwords()
    assert len(words) == 10_000
    assert {"123456", "password", "qwerty", "iloveyou", "trustno1", "1qaz2wsx"} <= words
    assert all(w == w.lower() and w.strip() == w for w in words)


async def test_every_problem_is_named_with_a_code_per_field(api: Api) -> None:
    response = await api.client.post("/auth/register", json={"username": "a", "password": "abc"})

    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "username_too_short"
    assert body["message"] == "username must be at least 3 characters"
    assert body["details"] == [
        {
            "loc": ["body", "username"],
            "msg": "username must be at least 3 characters",
            "type": "username_too_short",
        },
        {
            "loc": ["body", "password"],
            "msg": "password must be at least 8 characters",
            "type": "password_too_short",
        },
    ]
    assert "String should" not in response.text


async def test_a_reserved_name_alone_is_409_and_with_a_bad_password_422(api: Api) -> None:
    alone = await api.client.post(
        "/auth/register", json={"username": "admin", "password": PASSWORD}
    )
    both = await api.client.post("/auth/register", json={"username": "admin", "password": "x"})

    assert alone.status_code == 409 and alone.json()["code"] == "username_reserved"
    assert both.status_code == 422 and both.json()["code"] == "password_too_short"
    assert [d["type"] for d in both.json()["details"]] == [
        "username_reserved",
        "password_too_short",
    ]


async def test_empty_fields_get_codes_too(api: Api) -> None:
    response = await api.client.post("/auth/register", json={"username": "", "password": ""})
    assert response.status_code == 422
    assert [d["type"] for d in response.json()["details"]] == [
        "username_too_short",
        "password_too_short",
    ]


async def test_a_password_with_a_lone_surrogate_is_422(api: Api) -> None:
    body = b'{"username": "%s", "password": "abcdefgh\\ud800"}' % new_name().encode()
    response = await api.client.post(
        "/auth/register", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["code"] in ("invalid_password", "validation_error")


async def test_operators_get_the_role_claim_and_see_it_in_me(
    serve: Serve, make_settings: SettingsFactory
) -> None:
    boss = f"Op{new_name()}"
    async with serve(make_settings(operators=f" other , {boss.lower()} ")) as api:
        operator = await api.signed_in(boss)
        user = await api.signed_in()

        claims = jwt.decode(operator.access, options={"verify_signature": False})
        plain = jwt.decode(user.access, options={"verify_signature": False})
        assert claims["role"] == "operator"
        assert "role" not in plain
        me = (await api.me(operator.access)).json()
        assert me == {"id": operator.id, "username": boss, "role": "operator"}
        assert (await api.me(user.access)).json() == {"id": user.id, "username": user.username}
        # A refresh asks the settings again.
        fresh = (await api.refresh(operator.refresh)).json()["accessToken"]
        assert jwt.decode(fresh, options={"verify_signature": False})["role"] == "operator"
