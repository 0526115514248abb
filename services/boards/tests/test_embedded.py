"""The embedded mode: SQLite (no row locks) and the in-process Redis store."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from duochat_boards.config import Settings
from duochat_boards.main import create_app
from duochat_common.events import Envelope
from duochat_common.events.schemas import BOARDS_STREAM
from duochat_common.redis_store import create_redis
from duochat_common.services import service


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(
        environment="test",
        database_url=f"sqlite:///{tmp_path}/boards.db",
        redis_url=f"memory://boards-{uuid.uuid4().hex[:8]}",
        outbox_relay_seconds=0.05,
    )


@pytest.fixture
async def client(settings, signer, chat_messages) -> AsyncIterator[httpx.AsyncClient]:
    service("boards").migrate(settings)
    app = create_app(settings, verifier=signer.verifier())
    app.state.message_source = chat_messages  # instead of chat's history API
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://b") as client:
            yield client


async def test_the_story_on_sqlite(client, api, settings, alice, bob, carol):
    board = await api.create_board(alice, title="러닝 메이트")
    first, second = await asyncio.gather(
        client.post(f"/boards/{board['id']}/apply", headers=bob.headers),
        client.post(f"/boards/{board['id']}/apply", headers=bob.headers),
    )
    room = await api.apply(carol, board["id"])
    matched = await client.post(
        f"/boards/{board['id']}/match", json={"roomId": room["roomId"]}, headers=alice.headers
    )

    # Without row locks, the unique key settles the double apply.
    assert sorted([first.status_code, second.status_code]) == [201, 409]
    assert matched.status_code == 200
    assert matched.json()["applicantCount"] == 2
    writer_rooms = (await client.get("/boards/rooms?role=writer", headers=alice.headers)).json()
    assert [r["status"] for r in writer_rooms["items"]] == ["matched", "rejected"]
    redis = create_redis(settings.redis_url)
    entries = await redis.xrange(settings.key(BOARDS_STREAM))
    await redis.aclose()
    types = [Envelope.from_json(fields["event"]).type for _id, fields in entries]
    assert types == ["board.created", "board.applied", "board.applied", "board.matched"]


async def test_applies_racing_a_close_on_sqlite(client, api, caller, alice):
    board = await api.create_board(alice)
    url = f"/boards/{board['id']}"
    applicants = [caller(600 + i, f"user{i}") for i in range(4)]

    responses = await asyncio.gather(
        *(client.post(f"{url}/apply", headers=u.headers) for u in applicants[:2]),
        client.delete(url, headers=alice.headers),
        *(client.post(f"{url}/apply", headers=u.headers) for u in applicants[2:]),
    )

    created = [r for r in responses if r.status_code == 201]
    assert responses[2].status_code == 204
    after = (await client.get(url, headers=alice.headers)).json()
    assert after["applicantCount"] == len(created)
    rooms = (await client.get("/boards/rooms?role=writer", headers=alice.headers)).json()["items"]
    assert len(rooms) == len(created)
    assert all(r["status"] == "closed" for r in rooms)


async def test_readyz(client):
    response = await client.get("/readyz")

    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "redis": "ok"}


async def test_leave_block_report_and_mute_on_sqlite(
    client, api, alice, bob, carol, olive, chat_messages
):
    board = await api.create_board(alice)
    left = await api.apply(bob, board["id"])
    stays = await api.apply(carol, board["id"])
    chat_messages.add(stays["roomId"], 2, carol.username, "you will regret this")

    assert (await client.post(f"/boards/rooms/{left['roomId']}/leave", headers=bob.headers)).json()[
        "status"
    ] == "left"
    muted = await client.put(f"/boards/rooms/{stays['roomId']}/mute", headers=alice.headers)
    assert muted.json()["muted"] is True
    filed = await client.post(
        "/boards/reports",
        json={"roomId": stays["roomId"], "reason": "abuse", "messageIds": [2]},
        headers=alice.headers,
    )
    assert filed.status_code == 201, filed.text
    blocks = await asyncio.gather(
        *(
            client.post("/boards/blocks", json={"userId": bob.id}, headers=alice.headers)
            for _ in range(2)
        )
    )
    assert sorted(r.status_code for r in blocks) == [200, 201]

    rooms = (await client.get("/boards/rooms", headers=alice.headers)).json()["items"]
    assert {r["roomId"]: (r["status"], r["muted"]) for r in rooms} == {
        left["roomId"]: ("left", False),
        stays["roomId"]: ("blocked", True),
    }
    assert (await client.get(f"/boards/{board['id']}", headers=alice.headers)).json()[
        "applicantCount"
    ] == 0
    reports = (await client.get("/boards/reports", headers=olive.headers)).json()["items"]
    assert [(r["reported"]["id"], r["messageIds"]) for r in reports] == [(carol.id, [2])]
    assert [m["message"] for m in reports[0]["messages"]] == ["you will regret this"]
