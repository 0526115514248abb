"""auth's request and response bodies (camelCase on the wire)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class Credentials(Wire):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class NewCredentials(Wire):
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


class RefreshRequest(Wire):
    """The refresh token, unless a browser's cookie carries it (then the body may be ``{}``)."""

    refresh_token: str | None = Field(default=None, min_length=1, max_length=512)


class UserOut(Wire):
    id: int
    username: str


class MeOut(UserOut):
    role: str | None = Field(default=None, description='"operator", or absent')


class TokenPair(Wire):
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
