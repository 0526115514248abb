"""auth's request and response bodies (camelCase on the wire)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from duochat_common.wire import CamelModel, UserOut


class Credentials(CamelModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class NewCredentials(CamelModel):
    """What ``register`` accepts. The rules are checked by ``policy``, which answers each broken
    one with a code of its own (the bounds here only cap what is read)."""

    username: str = Field(
        max_length=256,
        description="3-32 ASCII letters, digits, '.', '_' or '-'; unique ignoring case",
    )
    password: str = Field(
        max_length=1024,
        description="8 characters to 128 bytes as UTF-8, not one of the 10,000 most common "
        "passwords, not the username, at least 3 different characters",
    )


class RefreshRequest(CamelModel):
    """The refresh token, unless a browser's cookie carries it (then the body may be ``{}``)."""

    refresh_token: str | None = Field(default=None, min_length=1, max_length=512)


class MeOut(UserOut):
    role: str | None = Field(default=None, description='"operator", or absent')


class TokenPair(CamelModel):
    access_token: str
    # Left out when the refresh token went into the HttpOnly cookie (see cookies.py).
    refresh_token: str | None = None
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_in: int


class Jwk(BaseModel):
    """One public key (RFC 8037 OKP)."""

    kty: str
    crv: str
    x: str
    kid: str
    use: str
    alg: str


class Jwks(BaseModel):
    keys: list[Jwk]
