"""Who may do what: tickets, and the authorization matrix of every endpoint."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import httpx
import pytest

from duochat_common.events.schemas import ChatMessageSent, Recipient, UserRef
from duochat_common.testing import REDIS_URL, unique_prefix
from duochat_notify.config import Settings


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def message_to(user_id: int, text: str, room: str = "room-auth") -> ChatMessageSent:
    return ChatMessageSent(
        message_id=1,
        room_id=room,
        type="TALK",
        sender=UserRef(id=1, username="someone"),
        preview=text,
        created_at=datetime.now(UTC),
        recipients=[Recipient(id=user_id, username=f"user{user_id}", in_room=False)],
    )


async def ticket_for(http: httpx.AsyncClient, token: str) -> str:
    reply = await http.post("/notify/ticket", headers=auth(token))
    assert reply.status_code == 200, reply.text
    return str(reply.json()["ticket"])


async def test_a_ticket_opens_one_stream_once(cluster):
    _, token = cluster.user()
    async with httpx.AsyncClient(
        base_url=cluster.a.url, timeout=httpx.Timeout(5, read=None)
    ) as http:
        ticket = await ticket_for(http, token)
        async with http.stream("GET", "/notify/stream", params={"ticket": ticket}) as first:
            assert first.status_code == 200
            # Spent: neither this instance nor the other takes it again.
            again = await http.get("/notify/stream", params={"ticket": ticket})
            assert again.status_code == 401
            assert again.json()["code"] == "invalid_ticket"
        async with httpx.AsyncClient(base_url=cluster.b.url) as other:
            assert (await other.get("/notify/stream", params={"ticket": ticket})).status_code == 401


async def test_a_ticket_expires(database_url, signer):
    settings = Settings(
        database_url=database_url,
        redis_url=REDIS_URL,
        redis_prefix=unique_prefix(),
        auth_jwks_json=json.dumps(signer.jwks()),
        ticket_ttl_seconds=1,
        consume_events=False,
    )
    from duochat_notify.main import create_app

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://notify"
        ) as http:
            reply = await http.post("/notify/ticket", headers=auth(signer.token(5, "five")))
            assert reply.json()["expiresIn"] == 1
            await asyncio.sleep(1.3)
            late = await http.get("/notify/stream", params={"ticket": reply.json()["ticket"]})
            assert late.status_code == 401
            assert late.json()["code"] == "invalid_ticket"


@pytest.mark.parametrize(
    "ticket",
    ["", "x", "a" * 128, "../../etc/passwd", "' OR 1=1 --", "\u00e9\u00e9"],
)
async def test_made_up_tickets_are_refused(cluster, ticket):
    async with httpx.AsyncClient(base_url=cluster.b.url) as http:
        reply = await http.get("/notify/stream", params={"ticket": ticket})
        assert reply.status_code == 401
        assert reply.json()["code"] == "invalid_ticket"


async def test_an_access_token_is_not_a_ticket(cluster):
    _, token = cluster.user()
    async with httpx.AsyncClient(base_url=cluster.b.url) as http:
        assert (await http.get("/notify/stream", params={"ticket": token})).status_code in (
            401,
            422,
        )
        # A bearer header does not open a stream either: only a ticket does.
        assert (await http.get("/notify/stream", headers=auth(token))).status_code == 401


async def test_no_way_to_open_another_users_stream(cluster, sse):
    """Alice holds a valid ticket and tries every way to name Bob instead of herself."""
    alice, alice_token = cluster.user()
    bob, bob_token = cluster.user()
    tricks = [
        {
            "params": {
                "userId": str(bob),
                "user": str(bob),
                "id": str(bob),
                "username": f"user{bob}",
            }
        },
        {"headers": {"Authorization": f"Bearer {bob_token}", "X-User-Id": str(bob)}},
    ]
    for trick in tricks:
        async with sse(cluster.b.url, alice_token, **trick) as stream:
            await cluster.publish(message_to(bob, "for bob only"))
            await cluster.publish(message_to(alice, "for alice"))
            event = await stream.next()
            assert event.data["preview"] == "for alice"
            await stream.quiet(0.3)
    async with httpx.AsyncClient(base_url=cluster.b.url) as http:
        # The old app's URL shape (a user id in the path) does not exist.
        ticket = await ticket_for(http, alice_token)
        assert (
            await http.get(f"/notify/stream/{bob}", params={"ticket": ticket})
        ).status_code == 404
        assert (await http.get(f"/notify/subscribe/{bob}")).status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/notify/ticket", None),
        ("GET", "/notify/stream", None),
        ("GET", "/notify/alarms", None),
        ("POST", "/notify/alarms/read", {"roomId": "r"}),
    ],
)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer not.a.token"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ],
    ids=["none", "empty", "garbage", "basic"],
)
async def test_anonymous_callers_get_401_everywhere(cluster, method, path, body, headers):
    async with httpx.AsyncClient(base_url=cluster.a.url) as http:
        reply = await http.request(method, path, json=body, headers=headers)
        assert reply.status_code == 401, reply.text
        assert reply.json()["code"] in ("unauthorized", "invalid_ticket")


async def test_tokens_auth_would_not_accept_are_refused(cluster):
    user, _ = cluster.user()
    expired = cluster.signer.token(user, "x", ttl=-60)
    refresh = cluster.signer.token(user, "x", typ="refresh")
    wrong_audience = cluster.signer.token(user, "x", aud="someone-else")
    from duochat_common.testing import TestSigner

    foreign = TestSigner().token(user, "x")
    async with httpx.AsyncClient(base_url=cluster.a.url) as http:
        for token in (expired, refresh, wrong_audience, foreign):
            assert (await http.post("/notify/ticket", headers=auth(token))).status_code == 401
            assert (await http.get("/notify/alarms", headers=auth(token))).status_code == 401


async def test_authorization_matrix(cluster, sse, alarms_of):
    """Every endpoint against the owner of some alarms and another signed-in user."""
    owner, owner_token = cluster.user()
    _, other_token = cluster.user()
    await cluster.publish(message_to(owner, "private", room="room-owner"))
    async with httpx.AsyncClient(base_url=cluster.a.url) as http:
        owner_page = await alarms_of(http, owner_token, 1)
        [alarm] = owner_page["items"]

        # GET /notify/alarms: each sees their own only.
        other_page = (await http.get("/notify/alarms", headers=auth(other_token))).json()
        assert other_page == {"items": [], "unreadCount": 0, "nextCursor": None}

        # POST /notify/alarms/read: another user cannot mark the owner's alarms read.
        for body in ({"ids": [alarm["id"]]}, {"roomId": "room-owner"}):
            reply = await http.post("/notify/alarms/read", json=body, headers=auth(other_token))
            assert reply.status_code == 200
            assert reply.json() == {"updated": 0, "unreadCount": 0}
        assert (await http.get("/notify/alarms", headers=auth(owner_token))).json()[
            "unreadCount"
        ] == 1

        # POST /notify/ticket + GET /notify/stream: the other user's ticket opens their own
        # stream, which never carries the owner's events.
        async with (
            sse(cluster.b.url, other_token) as others,
            sse(cluster.b.url, owner_token) as own,
        ):
            await cluster.publish(message_to(owner, "second"))
            assert (await own.next()).data["preview"] == "second"
            await others.quiet(0.5)

        # The owner can do all of it.
        reply = await http.post(
            "/notify/alarms/read", json={"ids": [alarm["id"]]}, headers=auth(owner_token)
        )
        assert reply.json() == {"updated": 1, "unreadCount": 1}


async def test_the_stream_ends_when_the_access_token_expires(cluster, sse):
    # Issue 12, finding 10: a stream outlived its owner's token (and so a sign-out) for as
    # long as the connection lasted. It now ends at the token's expiry, as a STOMP session does.
    user_id, _ = cluster.user()
    token = cluster.signer.token(user_id, f"user{user_id}", ttl=2)
    async with sse(cluster.a.url, token) as stream:
        started = asyncio.get_running_loop().time()
        await asyncio.wait_for(stream.ended.wait(), 8)
        assert asyncio.get_running_loop().time() - started < 4
        assert stream.error is None  # ended by the server, cleanly


async def test_a_stream_with_a_long_lived_token_stays_open(cluster, sse):
    async with sse(cluster.b.url, cluster.user()[1]) as stream:
        await asyncio.sleep(2.5)
        assert not stream.ended.is_set()


async def test_ticket_minting_is_limited_per_user(database_url, signer):
    # Issue 12, finding 15: tickets could be minted without limit.
    settings = Settings(
        database_url=database_url,
        redis_url=REDIS_URL,
        redis_prefix=unique_prefix(),
        auth_jwks_json=json.dumps(signer.jwks()),
        tickets_per_minute=3,
        consume_events=False,
    )
    from duochat_notify.main import create_app

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://notify"
        ) as http:
            for _ in range(3):
                assert (
                    await http.post("/notify/ticket", headers=auth(signer.token(7, "s")))
                ).is_success
            refused = await http.post("/notify/ticket", headers=auth(signer.token(7, "s")))
            assert refused.status_code == 429
            assert 1 <= int(refused.headers["Retry-After"]) <= 60
            # per user: another one still gets a ticket
            other = await http.post("/notify/ticket", headers=auth(signer.token(8, "t")))
            assert other.status_code == 200


def test_a_ticket_lifetime_is_bounded():
    with pytest.raises(ValueError, match="ticket_ttl_seconds"):
        Settings(ticket_ttl_seconds=10**9)
