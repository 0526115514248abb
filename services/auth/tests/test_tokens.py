"""Access tokens: /auth/me, the JWKS, key rotation, and forged tokens (all 401)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from duochat_auth.keys import KeyRing, generate_pem, parse_pem_keys

from .conftest import Account, Api, Serve, SettingsFactory


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def claims_for(api: Api, account: Account, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": str(account.id),
        "name": account.username,
        "iss": api.settings.jwt_issuer,
        "aud": api.settings.jwt_audience,
        "iat": now,
        "exp": now + 300,
        "typ": "access",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def sign(api: Api, claims: dict[str, Any], **headers: Any) -> str:
    """Signed with auth's real current key: only the claims or headers are wrong."""
    key = api.app.state.keys.current
    return jwt.encode(claims, key.private, algorithm="EdDSA", headers={"kid": key.kid, **headers})


def unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    """What PyJWT makes with ``algorithm="none"``: no signature at all."""
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}."


def hs256(claims: dict[str, Any], secret: bytes, kid: str) -> str:
    """An HMAC token made by hand (PyJWT refuses to use a public key as an HMAC secret)."""
    header = {"alg": "HS256", "typ": "JWT", "kid": kid}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


async def test_me_names_the_caller(api: Api) -> None:
    account = await api.signed_in()
    response = await api.me(account.access)
    assert response.status_code == 200
    assert response.json() == {"id": account.id, "username": account.username}


async def test_me_without_a_token_is_401(api: Api) -> None:
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Basic dXNlcjpwYXNz"}):
        response = await api.client.get("/auth/me", headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_jwks_publishes_the_public_key(api: Api) -> None:
    response = await api.client.get("/auth/.well-known/jwks.json")
    assert response.status_code == 200
    assert "max-age" in response.headers["Cache-Control"]
    keys = response.json()["keys"]
    assert len(keys) >= 1
    for key in keys:
        assert key["kty"] == "OKP"
        assert key["crv"] == "Ed25519"
        assert key["alg"] == "EdDSA"
        assert key["use"] == "sig"
        assert key["kid"]
        assert "d" not in key  # never the private part
        assert len(unb64(key["x"])) == 32
    account = await api.signed_in()
    kid = jwt.get_unverified_header(account.access)["kid"]
    signing = next(k for k in keys if k["kid"] == kid)
    jwt.decode(
        account.access,
        jwt.PyJWK(signing).key,
        algorithms=["EdDSA"],
        audience=api.settings.jwt_audience,
        issuer=api.settings.jwt_issuer,
    )


async def test_a_configured_key_bundle_publishes_all_and_signs_with_the_first(
    make_settings: SettingsFactory, serve: Serve
) -> None:
    new_pem, old_pem = generate_pem(), generate_pem()
    new_key, old_key = parse_pem_keys(new_pem)[0], parse_pem_keys(old_pem)[0]
    async with serve(make_settings(jwt_private_key=new_pem + "\n" + old_pem)) as api:
        published = (await api.client.get("/auth/.well-known/jwks.json")).json()["keys"]
        assert [k["kid"] for k in published] == [new_key.kid, old_key.kid]
        account = await api.signed_in()
        assert jwt.get_unverified_header(account.access)["kid"] == new_key.kid
        # a token the old key signed before the rotation still verifies
        old_token = KeyRing([old_key]).sign_access_token(
            user_id=account.id,
            username=account.username,
            issuer=api.settings.jwt_issuer,
            audience=api.settings.jwt_audience,
            ttl=60,
        )
        assert (await api.me(old_token)).status_code == 200


async def test_the_generated_key_survives_a_restart(
    make_settings: SettingsFactory, serve: Serve
) -> None:
    settings = make_settings()
    async with serve(settings) as api:
        account = await api.signed_in()
        first = (await api.client.get("/auth/.well-known/jwks.json")).json()
    async with serve(settings) as api:
        assert (await api.client.get("/auth/.well-known/jwks.json")).json() == first
        assert (await api.me(account.access)).status_code == 200


def _tamper_signature(token: str) -> str:
    head, payload, signature = token.split(".")
    raw = bytearray(unb64(signature))
    raw[0] ^= 0x01
    return f"{head}.{payload}.{b64(bytes(raw))}"


def _tamper_payload(token: str, **changes: Any) -> str:
    head, payload, signature = token.split(".")
    claims = json.loads(unb64(payload))
    claims.update(changes)
    return f"{head}.{b64(json.dumps(claims).encode())}.{signature}"


def _public_secrets(api: Api) -> dict[str, bytes]:
    public = api.app.state.keys.current.public
    jwk = api.app.state.keys.jwks()["keys"][0]
    return {
        "raw": public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw),
        "pem": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "der": public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "jwk": json.dumps(jwk).encode(),
        "jwk-x": jwk["x"].encode(),
    }


FORGERIES = [
    "alg-none",
    "alg-none-with-kid",
    "alg-none-uppercase",
    "tampered-signature",
    "tampered-payload",
    "no-signature",
    "expired",
    "hs256-raw",
    "hs256-pem",
    "hs256-der",
    "hs256-jwk",
    "hs256-jwk-x",
    "rs256-header",
    "unknown-kid",
    "no-kid",
    "kid-not-a-string",
    "other-key-right-kid",
    "wrong-audience",
    "wrong-issuer",
    "no-audience",
    "refresh-typed",
    "untyped",
    "no-subject",
    "subject-not-a-number",
    "no-expiry",
    "issued-in-the-future-and-expired",
    "the-refresh-token",
    "garbage",
    "two-segments",
    "empty-segments",
]


def forge(kind: str, api: Api, account: Account) -> str:
    good = claims_for(api, account)
    kid = api.app.state.keys.current.kid
    secrets = _public_secrets(api)
    match kind:
        case "alg-none":
            return unsigned({"alg": "none", "typ": "JWT"}, good)
        case "alg-none-with-kid":
            return unsigned({"alg": "none", "kid": kid}, good)
        case "alg-none-uppercase":
            return unsigned({"alg": "NONE", "kid": kid}, good)
        case "tampered-signature":
            return _tamper_signature(account.access)
        case "tampered-payload":
            return _tamper_payload(account.access, sub=str(account.id + 1), name="admin")
        case "no-signature":
            return account.access.rsplit(".", 1)[0] + "."
        case "expired":
            now = int(time.time())
            return sign(api, claims_for(api, account, iat=now - 3600, exp=now - 60))
        case "hs256-raw" | "hs256-pem" | "hs256-der" | "hs256-jwk" | "hs256-jwk-x":
            return hs256(good, secrets[kind.removeprefix("hs256-")], kid)
        case "rs256-header":
            _head, payload, signature = account.access.split(".")
            header = b64(json.dumps({"alg": "RS256", "kid": kid}).encode())
            return f"{header}.{payload}.{signature}"
        case "unknown-kid":
            return sign(api, good, kid="0123456789abcdef")
        case "no-kid":
            key = api.app.state.keys.current.private
            return jwt.encode(good, key, algorithm="EdDSA")
        case "kid-not-a-string":
            header = b64(json.dumps({"alg": "EdDSA", "kid": 12345}).encode())
            signing_input = f"{header}.{b64(json.dumps(good).encode())}"
            signature = api.app.state.keys.current.private.sign(signing_input.encode())
            return f"{signing_input}.{b64(signature)}"
        case "other-key-right-kid":
            return jwt.encode(
                good, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": kid}
            )
        case "wrong-audience":
            return sign(api, claims_for(api, account, aud="someone-else"))
        case "wrong-issuer":
            return sign(api, claims_for(api, account, iss="https://evil.example"))
        case "no-audience":
            return sign(api, claims_for(api, account, aud=None))
        case "refresh-typed":
            return sign(api, claims_for(api, account, typ="refresh"))
        case "untyped":
            return sign(api, claims_for(api, account, typ=None))
        case "no-subject":
            return sign(api, claims_for(api, account, sub=None))
        case "subject-not-a-number":
            return sign(api, claims_for(api, account, sub="root"))
        case "no-expiry":
            return sign(api, claims_for(api, account, exp=None))
        case "issued-in-the-future-and-expired":
            now = int(time.time())
            return sign(api, claims_for(api, account, iat=now + 3600, exp=now - 3600))
        case "the-refresh-token":
            return account.refresh
        case "garbage":
            return "definitely-not-a-jwt"
        case "two-segments":
            return ".".join(account.access.split(".")[:2])
        case "empty-segments":
            return ".."
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", FORGERIES)
async def test_forged_tokens_are_401(api: Api, kind: str) -> None:
    account = await api.signed_in()
    token = forge(kind, api, account)
    response = await api.me(token)
    assert response.status_code == 401, (kind, response.text)
    assert response.json()["code"] in ("unauthorized", "token_expired")
    # the genuine token still works: nothing above poisoned the verifier
    assert (await api.me(account.access)).status_code == 200


async def test_an_expired_token_says_so(api: Api) -> None:
    account = await api.signed_in()
    response = await api.me(forge("expired", api, account))
    assert response.json()["code"] == "token_expired"


async def test_tokens_of_another_deployment_are_401(
    make_settings: SettingsFactory, serve: Serve
) -> None:
    """Two auth deployments with their own keys do not accept each other's tokens."""
    async with serve(make_settings(jwt_private_key=generate_pem())) as first:
        account = await first.signed_in()
    async with serve(make_settings(jwt_private_key=generate_pem())) as second:
        assert (await second.me(account.access)).status_code == 401
