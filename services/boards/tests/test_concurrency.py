"""Races between state changes, against a pooled engine (real concurrent transactions), in a
database of the test's own."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from sqlalchemy import text

from duochat_boards import service
from duochat_boards.outbox import Outbox
from duochat_common.db import Database
from duochat_common.errors import Conflict
from duochat_common.events import EventBus
from duochat_common.events.schemas import BoardClosed, BoardMatched
from duochat_common.tokens import AuthUser

ROUNDS = 3


@pytest.fixture
def client(pooled_client):
    """Each request gets its own pooled connection: real concurrent transactions."""
    return pooled_client


async def test_two_applies_by_one_user_give_one_room(client, api, alice, bob):
    for _ in range(ROUNDS):
        board = await api.create_board(alice)

        responses = await asyncio.gather(
            *(client.post(f"/boards/{board['id']}/apply", headers=bob.headers) for _ in range(2))
        )

        assert sorted(r.status_code for r in responses) == [201, 409]
        assert next(r for r in responses if r.status_code == 409).json()["code"] == (
            "already_applied"
        )
        after = (await client.get(f"/boards/{board['id']}", headers=bob.headers)).json()
        assert after["applicantCount"] == 1


async def test_two_matches_one_wins(client, api, alice, bob, carol, dave, events):
    for _ in range(ROUNDS):
        board = await api.create_board(alice)
        rooms = [await api.apply(u, board["id"]) for u in (bob, carol, dave)]

        responses = await asyncio.gather(
            *(
                client.post(
                    f"/boards/{board['id']}/match",
                    json={"roomId": room["roomId"]},
                    headers=alice.headers,
                )
                for room in rooms[:2]
            )
        )

        assert sorted(r.status_code for r in responses) == [200, 409]
        mine = (await client.get("/boards/rooms?role=writer", headers=alice.headers)).json()
        on_board = [r for r in mine["items"] if r["boardId"] == board["id"]]
        assert Counter(r["status"] for r in on_board) == {"matched": 1, "rejected": 2}
        matched = [e for e in await events() if e.type == "board.matched"]
        decided = [
            BoardMatched.parse(e) for e in matched if BoardMatched.parse(e).board_id == board["id"]
        ]
        assert len(decided) == 1
        winner = next(r for r in on_board if r["status"] == "matched")
        assert decided[0].matched.room_id == winner["roomId"]


async def test_applies_racing_a_close_leave_no_open_room(client, api, caller, alice, events):
    applicants = [caller(500 + i, f"user{i}") for i in range(6)]
    for _ in range(ROUNDS):
        board = await api.create_board(alice)
        url = f"/boards/{board['id']}"

        responses = await asyncio.gather(
            *(client.post(f"{url}/apply", headers=u.headers) for u in applicants[:3]),
            client.delete(url, headers=alice.headers),
            *(client.post(f"{url}/apply", headers=u.headers) for u in applicants[3:]),
        )

        close = responses[3]
        applies = responses[:3] + responses[4:]
        assert close.status_code == 204
        assert {r.status_code for r in applies} <= {201, 409}
        assert all(r.json()["code"] == "board_closed" for r in applies if r.status_code == 409)
        created = {r.json()["roomId"] for r in applies if r.status_code == 201}
        after = (await client.get(url, headers=alice.headers)).json()
        assert after["status"] == "closed"
        assert after["applicantCount"] == len(created)
        rooms = (await client.get("/boards/rooms?role=writer", headers=alice.headers)).json()
        on_board = [r for r in rooms["items"] if r["boardId"] == board["id"]]
        assert {r["roomId"] for r in on_board} == created
        assert all(r["status"] == "closed" for r in on_board)
        closed = [
            BoardClosed.parse(e)
            for e in await events()
            if e.type == "board.closed" and e.data["boardId"] == board["id"]
        ]
        assert [{r.room_id for r in c.rooms} for c in closed] == [created]


async def test_a_match_racing_a_close_one_wins(client, api, alice, bob):
    for _ in range(ROUNDS):
        board = await api.create_board(alice)
        room = await api.apply(bob, board["id"])
        url = f"/boards/{board['id']}"

        match, close = await asyncio.gather(
            client.post(f"{url}/match", json={"roomId": room["roomId"]}, headers=alice.headers),
            client.delete(url, headers=alice.headers),
        )

        assert sorted([match.status_code, close.status_code]) in ([200, 409], [204, 409])
        final = (await client.get(url, headers=alice.headers)).json()["status"]
        expected_room = {"matched": "matched", "closed": "closed"}[final]
        got = (await client.get(f"/boards/rooms/{room['roomId']}", headers=bob.headers)).json()
        assert got["status"] == expected_room


async def test_the_unique_key_settles_an_apply_that_checked_too_early(
    own_database_url, redis, settings, alice, bob
):
    # Transaction `late` reads before `early` applies, so its own "did I apply?" check runs on a
    # snapshot without early's room; only the unique key on (board, applicant) can stop it.
    db = Database(own_database_url)
    outbox = Outbox(db=db, bus=EventBus(redis), stream_key=settings.key)
    user = AuthUser(id=bob.id, username=bob.username)
    try:
        async with db.session() as session:
            board = await service.create_board(
                session=session,
                outbox=outbox,
                user=AuthUser(id=alice.id, username=alice.username),
                title="t",
                content=None,
            )
        async with db.session() as late, db.session() as early:
            await late.execute(text("SELECT COUNT(*) FROM rooms"))  # opens late's snapshot
            await service.apply(session=early, outbox=outbox, board_id=board.id, user=user)

            with pytest.raises(Conflict) as refused:
                await service.apply(session=late, outbox=outbox, board_id=board.id, user=user)

        assert refused.value.code == "already_applied"
        async with db.session() as session:
            rooms = await session.scalar(text("SELECT COUNT(*) FROM rooms"))
            count = await session.scalar(text("SELECT applicant_count FROM boards"))
        assert (rooms, count) == (1, 1)
    finally:
        await db.dispose()


async def test_racing_blocks_and_mutes_of_one_pair_make_one_change(client, api, alice, bob):
    board = await api.create_board(alice)
    room = await api.apply(bob, board["id"])

    blocks = await asyncio.gather(
        *(
            client.post("/boards/blocks", json={"userId": bob.id}, headers=alice.headers)
            for _ in range(3)
        )
    )
    mutes = await asyncio.gather(
        *(
            client.put(f"/boards/rooms/{room['roomId']}/mute", headers=alice.headers)
            for _ in range(3)
        )
    )

    assert sorted(r.status_code for r in blocks) in ([200, 200, 201], [200, 201, 201])
    assert [(r.status_code, r.json().get("muted")) for r in mutes] == [(200, True)] * 3
    listed = (await client.get("/boards/blocks", headers=alice.headers)).json()["items"]
    assert [b["user"]["id"] for b in listed] == [bob.id]
    assert (await api.board(alice, board["id"]))["applicantCount"] == 0


async def test_an_apply_racing_a_block_leaves_no_open_room(client, api, alice, bob):
    for _ in range(ROUNDS):
        board = await api.create_board(alice)
        applied, blocked = await asyncio.gather(
            client.post(f"/boards/{board['id']}/apply", headers=bob.headers),
            client.post("/boards/blocks", json={"userId": bob.id}, headers=alice.headers),
        )
        assert blocked.status_code in (200, 201, 404), blocked.text  # 404: bob unknown yet
        if applied.status_code == 201 and blocked.status_code != 404:
            room = await api.room(alice, applied.json()["roomId"])
            assert room["status"] == "blocked"
        await client.delete(f"/boards/blocks/{bob.id}", headers=alice.headers)
