"""What a new account's name and password must be, with one code per rule.

Every problem of a registration is reported at once: the top-level ``code`` is the first one
(a field's problems in the order below, the name before the password), and ``details`` holds
each as ``{loc, msg, type}`` with ``type`` the code, so that an app shows each field's own
sentence instead of a validator's text. A reserved name alone is 409; anything else is 422.

| field | code | rule |
|---|---|---|
| username | ``username_too_short`` / ``username_too_long`` | 3-32 characters after NFKC |
| username | ``invalid_username`` | only ASCII letters, digits, ``.``, ``_``, ``-`` |
| username | ``username_reserved`` (409) | not a name that reads as the system (``admin``, ...) |
| password | ``invalid_password`` | valid Unicode (no lone surrogates) |
| password | ``password_too_short`` | at least 8 characters |
| password | ``password_too_long`` | at most 128 bytes as UTF-8 |
| password | ``password_too_common`` | not one of the 10,000 most common passwords (any case) |
| password | ``password_same_as_username`` | not the name itself (any case) |
| password | ``password_too_simple`` | at least 3 different characters |
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources

from duochat_auth.usernames import ALLOWED, RESERVED, canonical
from duochat_common.errors import Conflict, DomainError, Unprocessable

NAME_MIN, NAME_MAX = 3, 32
PASSWORD_MIN_CHARS, PASSWORD_MAX_BYTES = 8, 128


@cache
def common_passwords() -> frozenset[str]:
    """The shipped list (``data/common-passwords.txt``; source and licence in its header)."""
    text = resources.files("duochat_auth").joinpath("data/common-passwords.txt").read_text()
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line.strip() and line[0] != "#"
    )


@dataclass(frozen=True)
class Problem:
    field: str
    code: str
    message: str
    status: int = 422

    def detail(self) -> dict[str, object]:
        return {"loc": ["body", self.field], "msg": self.message, "type": self.code}


def name_problems(name: str) -> list[Problem]:
    display = unicodedata.normalize("NFKC", name)
    key = canonical(display)
    if len(display) < NAME_MIN:
        return [Problem("username", "username_too_short", "username must be at least 3 characters")]
    if len(display) > NAME_MAX:
        return [Problem("username", "username_too_long", "username must be at most 32 characters")]
    if not ALLOWED.fullmatch(key) or not display.isascii():
        return [
            Problem(
                "username",
                "invalid_username",
                "username may hold only ASCII letters, digits, '.', '_' or '-'",
            )
        ]
    if key.strip("._-") in RESERVED:
        return [Problem("username", "username_reserved", "this username is reserved", 409)]
    return []


def password_problems(password: str, name: str) -> list[Problem]:
    try:
        password.encode()
    except UnicodeEncodeError:
        message = "password must be valid Unicode text"
        return [Problem("password", "invalid_password", message)]
    if len(password) < PASSWORD_MIN_CHARS:
        message = "password must be at least 8 characters"
        return [Problem("password", "password_too_short", message)]
    if len(password.encode()) > PASSWORD_MAX_BYTES:
        message = "password must be at most 128 bytes"
        return [Problem("password", "password_too_long", message)]
    if password.lower() in common_passwords():
        message = "this password is one of the most common ones; choose another"
        return [Problem("password", "password_too_common", message)]
    if password.lower() == name.lower():
        message = "password must not be the username"
        return [Problem("password", "password_same_as_username", message)]
    if len(set(password)) < 3:
        message = "password must have at least 3 different characters"
        return [Problem("password", "password_too_simple", message)]
    return []


def check_new_credentials(username: str, password: str) -> str:
    """The display name to store, or one error naming every problem."""
    problems = name_problems(username) + password_problems(password, username)
    if not problems:
        return unicodedata.normalize("NFKC", username)
    status = 409 if all(p.status == 409 for p in problems) else 422
    first = next(p for p in problems if p.status == status)
    error: type[DomainError] = Conflict if status == 409 else Unprocessable
    raise error(first.message, code=first.code, details=[p.detail() for p in problems])
