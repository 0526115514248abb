"""TokenVerifier: JWKS caching, refetch on an unknown kid (rate-limited), rotation, outages."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from duochat_common.errors import Unauthorized, Unavailable
from duochat_common.testing import TestSigner
from duochat_common.tokens import AuthUser, TokenVerifier, bearer_token


class Jwks:
    """The JWKS endpoint as the verifier sees it: what it serves, how often it was asked."""

    def __init__(self, *signers: TestSigner) -> None:
        self.signers = list(signers)
        self.calls = 0
        self.down = False
        self.extra: list[dict[str, Any]] = []

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        if self.down:
            raise ConnectionError("auth is down")
        keys = [k for s in self.signers for k in s.jwks()["keys"]]
        return {"keys": [*self.extra, *keys]}


def verifier_for(jwks: Jwks, **kw: Any) -> TokenVerifier:
    return TokenVerifier(jwks, issuer="duochat-auth", audience="duochat", **kw)


async def test_a_valid_token_names_its_user() -> None:
    signer = TestSigner()
    verifier = verifier_for(Jwks(signer))
    assert await verifier.verify(signer.token(7, "seven")) == AuthUser(id=7, username="seven")


async def test_the_jwks_is_fetched_once_and_cached() -> None:
    signer = TestSigner()
    jwks = Jwks(signer)
    verifier = verifier_for(jwks)
    await asyncio.gather(*(verifier.verify(signer.token(n, f"u{n}")) for n in range(20)))
    assert jwks.calls == 1


async def test_the_cache_expires() -> None:
    signer = TestSigner()
    jwks = Jwks(signer)
    verifier = verifier_for(jwks, cache_seconds=0.05, min_refetch_seconds=0)
    await verifier.verify(signer.token(1, "a"))
    await asyncio.sleep(0.06)
    await verifier.verify(signer.token(1, "a"))
    assert jwks.calls == 2


async def test_a_new_key_is_picked_up_on_its_first_token() -> None:
    old, new = TestSigner(), TestSigner()
    jwks = Jwks(old)
    verifier = verifier_for(jwks, min_refetch_seconds=0)
    await verifier.verify(old.token(1, "a"))
    jwks.signers = [new, old]  # auth rotated its key
    assert (await verifier.verify(new.token(2, "b"))).id == 2
    assert (await verifier.verify(old.token(1, "a"))).id == 1  # the old one still verifies
    assert jwks.calls == 2


async def test_unknown_kids_refetch_at_most_once_per_interval() -> None:
    signer, stranger = TestSigner(), TestSigner()
    jwks = Jwks(signer)
    verifier = verifier_for(jwks, min_refetch_seconds=60)
    await verifier.verify(signer.token(1, "a"))
    for _ in range(50):  # forged kids must not hammer auth
        with pytest.raises(Unauthorized):
            await verifier.verify(stranger.token(1, "a"))
    assert jwks.calls == 1


async def test_old_keys_keep_serving_while_auth_is_down() -> None:
    signer, stranger = TestSigner(), TestSigner()
    jwks = Jwks(signer)
    verifier = verifier_for(jwks, cache_seconds=0.01, min_refetch_seconds=0.3)
    await verifier.verify(signer.token(1, "a"))
    jwks.down = True
    await asyncio.sleep(0.35)  # the cache is stale, and a refetch is allowed
    for _ in range(30):
        assert (await verifier.verify(signer.token(1, "a"))).id == 1
        with pytest.raises(Unauthorized):
            await verifier.verify(stranger.token(1, "a"))
    assert jwks.calls == 2  # one failed refetch, not one per request
    jwks.down = False
    await asyncio.sleep(0.35)
    await verifier.verify(signer.token(1, "a"))
    assert jwks.calls == 3


async def test_no_keys_at_all_is_503_not_401() -> None:
    signer = TestSigner()
    jwks = Jwks(signer)
    jwks.down = True
    verifier = verifier_for(jwks, min_refetch_seconds=60)
    for _ in range(10):
        with pytest.raises(Unavailable):
            await verifier.verify(signer.token(1, "a"))
    assert jwks.calls == 1


async def test_malformed_jwks_entries_are_skipped() -> None:
    signer = TestSigner()
    jwks = Jwks(signer)
    jwks.extra = [
        {"kty": "OKP", "kid": "broken", "crv": "Ed25519", "x": "!!"},
        {"kty": "RSA", "kid": "rsa", "n": "x", "e": "AQAB"},
        {"kty": "OKP"},
        "not even an object",  # type: ignore[list-item]
    ]
    verifier = verifier_for(jwks)
    assert (await verifier.verify(signer.token(3, "c"))).id == 3


async def test_a_document_that_is_not_a_jwks_is_an_outage() -> None:
    async def fetch() -> dict[str, Any]:
        return {"hello": "world"}

    verifier = TokenVerifier(fetch, issuer="duochat-auth", audience="duochat")
    with pytest.raises(Unavailable):
        await verifier.verify(TestSigner().token(1, "a"))


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"typ": "refresh"}, "not an access token"),
        ({"aud": "other"}, "invalid token"),
        ({"iss": "other"}, "invalid token"),
        ({"sub": "x"}, "subject"),
    ],
)
async def test_wrong_claims_are_401(claims: dict[str, Any], message: str) -> None:
    signer = TestSigner()
    verifier = verifier_for(Jwks(signer))
    with pytest.raises(Unauthorized, match=message):
        await verifier.verify(signer.token(1, "a", **claims))


async def test_expired_tokens_are_401_with_their_own_code() -> None:
    signer = TestSigner()
    verifier = verifier_for(Jwks(signer))
    with pytest.raises(Unauthorized) as caught:
        await verifier.verify(signer.token(1, "a", ttl=-60))
    assert caught.value.code == "token_expired"


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),
        ("", None),
        ("Bearer", None),
        ("Bearer   ", None),
        ("Basic abc", None),
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token
