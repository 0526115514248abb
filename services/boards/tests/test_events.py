"""Events on the boards stream, and the outbox that makes them survive a Redis outage."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select

from duochat_boards.main import create_app
from duochat_boards.models import OutboxEvent
from duochat_boards.outbox import Outbox
from duochat_common.events import EventBus
from duochat_common.events.schemas import BoardApplied, BoardClosed, BoardCreated, BoardMatched
from duochat_common.testing import REDIS_SHAPES, redis_shape_url


@pytest.fixture(params=REDIS_SHAPES)
def redis_shape(request: pytest.FixtureRequest) -> tuple[str, bool]:
    """Every test here runs on one Redis and on a Redis Cluster."""
    found = redis_shape_url(request.param)
    if found is None:
        pytest.skip("no Redis Cluster (start one with .ci/redis-cluster start)")
    return found


async def test_created_and_applied(client, api, alice, bob, events):
    board = await api.create_board(alice, title="climbing")
    room = await api.apply(bob, board["id"])

    created, applied = await events()

    assert created.type == "board.created"
    assert BoardCreated.parse(created).model_dump(by_alias=True) == {
        "boardId": board["id"],
        "title": "climbing",
        "writer": alice.ref,
    }
    assert applied.type == "board.applied"
    assert BoardApplied.parse(applied).model_dump(by_alias=True) == {
        "boardId": board["id"],
        "boardTitle": "climbing",
        "roomId": room["roomId"],
        "writer": alice.ref,
        "applicant": bob.ref,
    }
    assert created.id != applied.id


async def test_matched_names_the_winner_and_every_rejected_room(
    client, api, alice, bob, carol, dave, events
):
    board = await api.create_board(alice, title="tennis")
    rooms = [await api.apply(u, board["id"]) for u in (bob, carol, dave)]
    await client.post(
        f"/boards/{board['id']}/match", json={"roomId": rooms[1]["roomId"]}, headers=alice.headers
    )

    last = (await events())[-1]

    assert last.type == "board.matched"
    assert BoardMatched.parse(last).model_dump(by_alias=True) == {
        "boardId": board["id"],
        "boardTitle": "tennis",
        "writer": alice.ref,
        "matched": {"roomId": rooms[1]["roomId"], "applicant": carol.ref},
        "rejected": [
            {"roomId": rooms[0]["roomId"], "applicant": bob.ref},
            {"roomId": rooms[2]["roomId"], "applicant": dave.ref},
        ],
    }


async def test_closed_names_every_room(client, api, alice, bob, carol, events):
    board = await api.create_board(alice, title="chess")
    rooms = [await api.apply(u, board["id"]) for u in (bob, carol)]
    await client.delete(f"/boards/{board['id']}", headers=alice.headers)

    last = (await events())[-1]

    assert last.type == "board.closed"
    assert BoardClosed.parse(last).model_dump(by_alias=True) == {
        "boardId": board["id"],
        "boardTitle": "chess",
        "writer": alice.ref,
        "rooms": [
            {"roomId": rooms[0]["roomId"], "applicant": bob.ref},
            {"roomId": rooms[1]["roomId"], "applicant": carol.ref},
        ],
    }


async def test_failed_requests_publish_nothing(client, api, alice, bob, events):
    board = await api.create_board(alice)
    await api.apply(bob, board["id"])
    await client.post(f"/boards/{board['id']}/apply", headers=bob.headers)  # 409
    await client.post(f"/boards/{board['id']}/apply", headers=alice.headers)  # 409
    await client.delete(f"/boards/{board['id']}", headers=bob.headers)  # 403

    assert [e.type for e in await events()] == ["board.created", "board.applied"]


async def test_published_events_are_marked_in_the_outbox(client, api, alice, db):
    await api.create_board(alice)

    async with db.session() as session:
        pending = await session.scalar(
            select(func.count()).select_from(OutboxEvent).where(OutboxEvent.published_at.is_(None))
        )
        total = await session.scalar(select(func.count()).select_from(OutboxEvent))

    assert (total, pending) == (1, 0)


async def test_events_committed_while_redis_is_down_are_relayed_later(
    settings, db, signer, alice, redis, events
):
    # Nothing listens on port 1: every publish fails, yet the change itself commits.
    down = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    app = create_app(down, verifier=signer.verifier(), database=db)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://b") as client:
            response = await client.post("/boards", json={"title": "t"}, headers=alice.headers)
            assert response.status_code == 201
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["redis"].startswith("fail")
    assert await events() == []

    relay = Outbox(db=db, bus=EventBus(redis), stream_key=settings.key)
    assert await relay.relay_once() == 0  # still inside its grace period: the request's to publish
    assert await relay.relay_once(grace_seconds=0) == 1
    assert await relay.relay_once(grace_seconds=0) == 0

    relayed = await events()
    assert [e.type for e in relayed] == ["board.created"]
    assert BoardCreated.parse(relayed[0]).board_id == response.json()["id"]


async def test_prune_drops_only_old_published_rows(client, api, alice, db, redis, settings):
    await api.create_board(alice)
    relay = Outbox(db=db, bus=EventBus(redis), stream_key=settings.key, retention_seconds=3600)
    assert await relay.prune() == 0

    relay.retention_seconds = -60  # everything published counts as old
    assert await relay.prune() == 1
