"""Blocks: silent, both ways where it matters, shared rooms read-only, events ordered."""

from __future__ import annotations

from duochat_common.events.schemas import UserBlocked, UserUnblocked


async def block(client, who, whom) -> int:
    response = await client.post("/boards/blocks", json={"userId": whom.id}, headers=who.headers)
    assert response.status_code in (200, 201), response.text
    return response.status_code


async def test_a_block_ends_shared_rooms_silently(client, api, alice, bob, carol, events):
    mine = await api.create_board(alice, title="alice's")
    theirs = await api.create_board(bob, title="bob's")
    bob_in_mine = await api.apply(bob, mine["id"])
    alice_in_theirs = await api.apply(alice, theirs["id"])
    carol_in_mine = await api.apply(carol, mine["id"])
    before = len(await events())

    assert await block(client, alice, bob) == 201

    # The blocker sees why; the blocked member sees a closed room, nothing more.
    assert (await api.room(alice, bob_in_mine["roomId"]))["status"] == "blocked"
    assert (await api.room(bob, bob_in_mine["roomId"]))["status"] == "closed"
    assert (await api.room(bob, alice_in_theirs["roomId"]))["status"] == "closed"
    assert (await api.room(carol, carol_in_mine["roomId"]))["status"] == "open"
    assert (await api.board(alice, mine["id"]))["applicantCount"] == 1  # carol only
    assert (await api.board(bob, theirs["id"]))["applicantCount"] == 0
    [event] = (await events())[before:]
    blocked = UserBlocked.parse(event)
    assert (blocked.blocker.id, blocked.blocked.id, blocked.version) == (alice.id, bob.id, 1)
    assert {r.room_id for r in blocked.rooms} == {
        bob_in_mine["roomId"],
        alice_in_theirs["roomId"],
    }
    listed = (await client.get("/boards/blocks", headers=alice.headers)).json()["items"]
    assert [b["user"] for b in listed] == [bob.ref]
    assert (await client.get("/boards/blocks", headers=bob.headers)).json()["items"] == []


async def test_the_blocked_user_no_longer_sees_or_reaches_the_blockers_boards(
    client, api, alice, bob
):
    board = await api.create_board(alice, title="hidden from bob")
    theirs = await api.create_board(bob, title="bob's own")
    await api.apply(alice, theirs["id"])
    await block(client, alice, bob)

    listed = (await client.get("/boards", headers=bob.headers)).json()["items"]
    assert board["id"] not in [b["id"] for b in listed]
    got = await client.get(f"/boards/{board['id']}", headers=bob.headers)
    assert got.status_code == 404 and got.json()["code"] == "board_not_found"
    applied = await client.post(f"/boards/{board['id']}/apply", headers=bob.headers)
    assert applied.status_code == 404 and applied.json()["code"] == "board_not_found"
    # The blocker knows: bob's boards are hidden from alice's list, and applying is refused.
    assert theirs["id"] not in [
        b["id"] for b in (await client.get("/boards", headers=alice.headers)).json()["items"]
    ]
    other = await api.create_board(bob, title="bob's second")
    refused = await client.post(f"/boards/{other['id']}/apply", headers=alice.headers)
    assert refused.status_code == 409 and refused.json()["code"] == "user_blocked"


async def test_unblocking_lets_them_back_and_keeps_rooms_read_only(client, api, alice, bob, events):
    board = await api.create_board(alice)
    room = await api.apply(bob, board["id"])
    assert await block(client, alice, bob) == 201
    assert await block(client, alice, bob) == 200  # already blocked: no second event
    before = len(await events())

    gone = await client.delete(f"/boards/blocks/{bob.id}", headers=alice.headers)
    again = await client.delete(f"/boards/blocks/{bob.id}", headers=alice.headers)

    assert gone.status_code == again.status_code == 204
    [event] = (await events())[before:]
    assert UserUnblocked.parse(event).version == 2
    assert (await client.get("/boards/blocks", headers=alice.headers)).json()["items"] == []
    assert (await client.get(f"/boards/{board['id']}", headers=bob.headers)).status_code == 200
    assert (await api.room(alice, room["roomId"]))["status"] == "blocked"
    # A second block of the pair counts on.
    assert await block(client, alice, bob) == 201
    assert UserBlocked.parse((await events())[-1]).version == 3


async def test_bad_blocks_are_4xx(client, api, alice, bob):
    await api.create_board(bob)  # boards knows bob
    me = await client.post("/boards/blocks", json={"userId": alice.id}, headers=alice.headers)
    assert me.status_code == 422 and me.json()["code"] == "cannot_block_self"
    nobody = await client.post("/boards/blocks", json={"userId": 999_999}, headers=alice.headers)
    assert nobody.status_code == 404 and nobody.json()["code"] == "user_not_found"
    for body in ({}, {"userId": 0}, {"userId": "bob"}, {"userId": 2**64}):
        response = await client.post("/boards/blocks", json=body, headers=alice.headers)
        assert response.status_code == 422, body
    assert (await client.delete("/boards/blocks/0", headers=alice.headers)).status_code == 422
