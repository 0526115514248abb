"""POST /auth/register: 201, 409 for a taken name, 422 for a weak or over-long one."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from duochat_auth.models import User

from .conftest import PASSWORD, Api, Serve, SettingsFactory, new_name


async def test_register_returns_the_new_user(api: Api) -> None:
    name = new_name()
    response = await api.client.post(
        "/auth/register", json={"username": name, "password": PASSWORD}
    )
    assert response.status_code == 201
    body = response.json()
    assert body == {"id": body["id"], "username": name}
    assert isinstance(body["id"], int)


async def test_a_taken_name_is_409(api: Api) -> None:
    account = await api.register()
    response = await api.client.post(
        "/auth/register", json={"username": account.username, "password": "other pass 99"}
    )
    assert response.status_code == 409
    assert response.json()["code"] == "username_taken"
    # the first account still signs in with its own password
    assert (await api.login(account)).status_code == 200


@pytest.mark.parametrize(
    ("username", "password", "code"),
    [
        ("ab", PASSWORD, "username_too_short"),
        ("a" * 33, PASSWORD, "username_too_long"),
        ("has space", PASSWORD, "invalid_username"),
        ("semi;colon", PASSWORD, "invalid_username"),
        ("slash/name", PASSWORD, "invalid_username"),
        ("emoji\U0001f600", PASSWORD, "invalid_username"),
        ("nul\x00name", PASSWORD, "invalid_username"),
        ("okname1", "short1", "password_too_short"),  # < 8 characters
        ("okname2", "password", "password_too_common"),
        ("okname2b", "BaseBall", "password_too_common"),  # any case
        ("okname2c", "1qaz2wsx", "password_too_common"),  # not in a short list
        ("okname3", "aaaaaaaaaaaa", "password_too_simple"),  # too repetitive
        ("okname4", "okname4", "password_too_short"),
        ("longname5", "LongName5", "password_same_as_username"),
        ("okname6", "x" * 129, "password_too_long"),  # > 128 characters
        ("okname7", "\u00e9" * 63 + "abcd", "password_too_long"),  # 67 characters, 130 bytes
        ("okname8", "\U0001f600" * 33, "password_too_long"),  # 33 characters, 132 bytes
    ],
)
async def test_weak_or_over_long_credentials_are_422(
    api: Api, username: str, password: str, code: str
) -> None:
    response = await api.client.post(
        "/auth/register", json={"username": username, "password": password}
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == code
    assert body["message"]


async def test_128_bytes_is_still_accepted(api: Api) -> None:
    password = "\u00e9" * 62 + "abcd"  # 66 characters, exactly 128 bytes
    assert len(password.encode()) == 128
    account = await api.register(password=password)
    assert (await api.login(account)).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"username": new_name()},
        {"password": PASSWORD},
        {"username": 123, "password": PASSWORD},
        {"username": new_name(), "password": None},
        [],
        "text",
    ],
)
async def test_malformed_bodies_are_422(api: Api, body: object) -> None:
    response = await api.client.post("/auth/register", json=body)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_a_body_that_is_not_json_is_422(api: Api) -> None:
    response = await api.client.post(
        "/auth/register", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_the_password_is_stored_hashed(api: Api) -> None:
    account = await api.register()
    async with api.app.state.db.session() as session:
        stored = await session.scalar(select(User.password_hash).where(User.id == account.id))
    assert stored is not None
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


async def test_a_name_differing_only_in_case_is_taken(api: Api) -> None:
    # MariaDB compares names case-insensitively, so nobody can pose as "HappyDaddy".
    account = await api.register(f"Case{new_name()}")
    response = await api.client.post(
        "/auth/register", json={"username": account.username.lower(), "password": PASSWORD}
    )
    assert response.status_code == 409


# Issue 12, finding 5: each of these registered as a new user next to an existing one.
@pytest.mark.parametrize(
    ("variant", "status", "code"),
    [
        (lambda n: n.upper(), 409, "username_taken"),
        (lambda n: n.title(), 409, "username_taken"),
        # full-width letters are the same name once NFKC-normalised
        (lambda n: "".join(chr(ord(c) + 0xFEE0) for c in n), 409, "username_taken"),
        # a Cyrillic a is not an ASCII letter: refused, not a second account
        (lambda n: n.replace("a", "\u0430", 1), 422, "invalid_username"),
        # a Latin letter with an accent: refused the same way
        (lambda n: n.replace("a", "\u00e2", 1), 422, "invalid_username"),
    ],
)
async def test_a_lookalike_of_a_taken_name_is_refused(
    api: Api, variant: object, status: int, code: str
) -> None:
    account = await api.register(f"ha{new_name()}")
    lookalike = variant(account.username)  # type: ignore[operator]
    assert lookalike != account.username
    response = await api.client.post(
        "/auth/register", json={"username": lookalike, "password": "other pass 99"}
    )
    assert (response.status_code, response.json()["code"]) == (status, code)


@pytest.mark.parametrize("name", ["system", "admin", "Admin", "ROOT", "_system_", "duochat"])
async def test_system_names_are_reserved(api: Api, name: str) -> None:
    response = await api.client.post(
        "/auth/register", json={"username": name, "password": PASSWORD}
    )
    assert response.status_code == 409
    assert response.json()["code"] == "username_reserved"


async def test_the_canonical_name_is_unique_in_the_database(api: Api) -> None:
    # Not only the service's check: two writers racing past it still cannot both store a name.
    account = await api.register(f"Mixed{new_name()}")
    async with api.app.state.db.session() as session:
        stored = await session.scalar(select(User).where(User.id == account.id))
        assert stored is not None
        assert stored.username == account.username
        assert stored.canonical == account.username.lower()
        session.add(
            User(
                username=f"other{new_name()}",
                canonical=stored.canonical,
                password_hash="x",
                created_at=stored.created_at,
            )
        )
        with pytest.raises(IntegrityError):
            await session.commit()


async def test_sign_in_takes_any_case_of_the_name(api: Api) -> None:
    account = await api.register(f"Mixed{new_name()}")
    account.username = account.username.upper()
    response = await api.login(account)
    assert response.status_code == 200


async def test_registrations_are_limited_per_address(
    make_settings: SettingsFactory, serve: Serve
) -> None:
    settings = make_settings(register_max_per_address=3, register_window_seconds=60)
    async with serve(settings) as api:
        for _ in range(3):
            await api.register()
        response = await api.client.post(
            "/auth/register", json={"username": new_name(), "password": PASSWORD}
        )
        assert response.status_code == 429
        assert 1 <= int(response.headers["Retry-After"]) <= 60
