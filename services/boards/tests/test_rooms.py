"""Applying (rooms), matching, closing, and listing rooms by role."""

from __future__ import annotations

import uuid

import pytest


async def test_apply_opens_a_room(client, api, alice, bob):
    board = await api.create_board(alice, title="duo queue")

    response = await client.post(f"/boards/{board['id']}/apply", headers=bob.headers)

    assert response.status_code == 201
    room = response.json()
    assert set(room) == {
        "roomId",
        "boardId",
        "boardTitle",
        "writer",
        "applicant",
        "status",
        "createdAt",
        "endedAt",
        "leftBy",
        "muted",
    }
    assert (room["endedAt"], room["leftBy"], room["muted"]) == (None, None, False)
    assert str(uuid.UUID(room["roomId"])) == room["roomId"]
    assert room["boardId"] == board["id"]
    assert room["boardTitle"] == "duo queue"
    assert room["writer"] == alice.ref
    assert room["applicant"] == bob.ref
    assert room["status"] == "open"
    after = (await client.get(f"/boards/{board['id']}", headers=bob.headers)).json()
    assert after["applicantCount"] == 1


async def test_applying_twice_is_409_already_applied(client, api, alice, bob):
    board = await api.create_board(alice)
    await api.apply(bob, board["id"])

    response = await client.post(f"/boards/{board['id']}/apply", headers=bob.headers)

    assert response.status_code == 409
    assert response.json()["code"] == "already_applied"
    assert response.json()["message"]
    after = (await client.get(f"/boards/{board['id']}", headers=bob.headers)).json()
    assert after["applicantCount"] == 1


async def test_applying_to_your_own_board_is_409_own_board(client, api, alice):
    board = await api.create_board(alice)

    response = await client.post(f"/boards/{board['id']}/apply", headers=alice.headers)

    assert response.status_code == 409
    assert response.json()["code"] == "own_board"


@pytest.mark.parametrize("decided", ["matched", "closed"])
async def test_applying_to_a_decided_board_is_409_board_closed(
    client, api, alice, bob, carol, decided
):
    board = await api.create_board(alice)
    room = await api.apply(bob, board["id"])
    if decided == "matched":
        await client.post(
            f"/boards/{board['id']}/match", json={"roomId": room["roomId"]}, headers=alice.headers
        )
    else:
        await client.delete(f"/boards/{board['id']}", headers=alice.headers)

    response = await client.post(f"/boards/{board['id']}/apply", headers=carol.headers)

    assert response.status_code == 409
    assert response.json()["code"] == "board_closed"


async def test_applying_to_an_unknown_board_is_404(client, bob):
    response = await client.post("/boards/987654321/apply", headers=bob.headers)

    assert response.status_code == 404


async def test_match_decides_every_room(client, api, alice, bob, carol, dave):
    board = await api.create_board(alice)
    rooms = {u.username: await api.apply(u, board["id"]) for u in (bob, carol, dave)}

    response = await client.post(
        f"/boards/{board['id']}/match",
        json={"roomId": rooms["carol"]["roomId"]},
        headers=alice.headers,
    )

    assert response.status_code == 200
    matched = response.json()
    assert matched["id"] == board["id"]
    assert matched["status"] == "matched"
    assert matched["applicantCount"] == 3
    statuses = {
        r["applicant"]["username"]: r["status"]
        for r in (await client.get("/boards/rooms?role=writer", headers=alice.headers)).json()[
            "items"
        ]
    }
    assert statuses == {"bob": "rejected", "carol": "matched", "dave": "rejected"}
    for user, expected in ((bob, "rejected"), (carol, "matched")):
        mine = (await client.get("/boards/rooms?role=applicant", headers=user.headers)).json()
        assert [r["status"] for r in mine["items"]] == [expected]


async def test_match_twice_is_409_board_closed(client, api, alice, bob, carol):
    board = await api.create_board(alice)
    first = await api.apply(bob, board["id"])
    second = await api.apply(carol, board["id"])
    await client.post(
        f"/boards/{board['id']}/match", json={"roomId": first["roomId"]}, headers=alice.headers
    )

    response = await client.post(
        f"/boards/{board['id']}/match", json={"roomId": second["roomId"]}, headers=alice.headers
    )

    assert response.status_code == 409
    assert response.json()["code"] == "board_closed"


async def test_match_with_a_room_of_another_board_is_404(client, api, alice, bob):
    board = await api.create_board(alice)
    other = await api.create_board(alice, title="other")
    await api.apply(bob, board["id"])
    foreign = await api.apply(bob, other["id"])

    response = await client.post(
        f"/boards/{board['id']}/match", json={"roomId": foreign["roomId"]}, headers=alice.headers
    )

    assert response.status_code == 404
    assert response.json()["code"] == "room_not_found"
    still = (await client.get(f"/boards/{board['id']}", headers=alice.headers)).json()
    assert still["status"] == "open"


@pytest.mark.parametrize("body", [{}, {"roomId": ""}, {"roomId": 7}, {"roomId": "x" * 65}])
async def test_match_without_a_valid_room_id_is_422(client, api, alice, body):
    board = await api.create_board(alice)

    response = await client.post(f"/boards/{board['id']}/match", json=body, headers=alice.headers)

    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_match_by_someone_else_is_403_and_changes_nothing(client, api, alice, bob):
    board = await api.create_board(alice)
    room = await api.apply(bob, board["id"])

    response = await client.post(
        f"/boards/{board['id']}/match", json={"roomId": room["roomId"]}, headers=bob.headers
    )

    assert response.status_code == 403
    assert (await client.get(f"/boards/{board['id']}", headers=bob.headers)).json()[
        "status"
    ] == "open"


async def test_delete_closes_the_board_and_its_rooms(client, api, alice, bob, carol):
    board = await api.create_board(alice)
    await api.apply(bob, board["id"])
    await api.apply(carol, board["id"])

    response = await client.delete(f"/boards/{board['id']}", headers=alice.headers)

    assert response.status_code == 204
    assert response.content == b""
    closed = (await client.get(f"/boards/{board['id']}", headers=alice.headers)).json()
    assert closed["status"] == "closed"
    rooms = (await client.get("/boards/rooms?role=writer", headers=alice.headers)).json()["items"]
    assert [r["status"] for r in rooms] == ["closed", "closed"]


@pytest.mark.parametrize("decided", ["matched", "closed"])
async def test_delete_of_a_decided_board_is_409_board_closed(client, api, alice, bob, decided):
    board = await api.create_board(alice)
    room = await api.apply(bob, board["id"])
    if decided == "matched":
        await client.post(
            f"/boards/{board['id']}/match", json={"roomId": room["roomId"]}, headers=alice.headers
        )
    else:
        await client.delete(f"/boards/{board['id']}", headers=alice.headers)

    response = await client.delete(f"/boards/{board['id']}", headers=alice.headers)

    assert response.status_code == 409
    assert response.json()["code"] == "board_closed"
    if decided == "matched":
        rooms = (await client.get("/boards/rooms", headers=bob.headers)).json()["items"]
        assert [r["status"] for r in rooms] == ["matched"]


async def test_rooms_by_role_newest_first(client, api, alice, bob, carol):
    mine = await api.create_board(alice, title="mine")
    theirs = await api.create_board(bob, title="bob's")
    from_bob = await api.apply(bob, mine["id"])
    from_carol = await api.apply(carol, mine["id"])
    alice_applied = await api.apply(alice, theirs["id"])

    as_writer = (await client.get("/boards/rooms?role=writer", headers=alice.headers)).json()
    as_applicant = (await client.get("/boards/rooms?role=applicant", headers=alice.headers)).json()
    both = (await client.get("/boards/rooms", headers=alice.headers)).json()

    assert [r["roomId"] for r in as_writer["items"]] == [from_carol["roomId"], from_bob["roomId"]]
    assert [r["applicant"]["username"] for r in as_writer["items"]] == ["carol", "bob"]
    assert [r["roomId"] for r in as_applicant["items"]] == [alice_applied["roomId"]]
    assert as_applicant["items"][0]["writer"] == bob.ref
    assert [r["roomId"] for r in both["items"]] == [
        alice_applied["roomId"],
        from_carol["roomId"],
        from_bob["roomId"],
    ]


async def test_rooms_of_someone_with_none_is_empty(client, dave):
    response = await client.get("/boards/rooms?role=writer", headers=dave.headers)

    assert response.status_code == 200
    assert response.json() == {"items": []}


async def test_rooms_with_an_unknown_role_is_422(client, alice):
    response = await client.get("/boards/rooms?role=admin", headers=alice.headers)

    assert response.status_code == 422


async def test_get_room_for_both_members(client, api, alice, bob):
    board = await api.create_board(alice)
    room = await api.apply(bob, board["id"])

    for member in (alice, bob):
        response = await client.get(f"/boards/rooms/{room['roomId']}", headers=member.headers)
        assert response.status_code == 200
        assert response.json() == room


async def test_get_room_by_a_stranger_is_403_and_unknown_is_404(client, api, alice, bob, carol):
    board = await api.create_board(alice)
    room = await api.apply(bob, board["id"])

    stranger = await client.get(f"/boards/rooms/{room['roomId']}", headers=carol.headers)
    unknown = await client.get(f"/boards/rooms/{uuid.uuid4()}", headers=alice.headers)

    assert stranger.status_code == 403
    assert stranger.json()["code"] == "not_member"
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "room_not_found"


async def test_board_ids_are_integers(client, alice):
    response = await client.get("/boards/abc", headers=alice.headers)
    huge = await client.get(f"/boards/{2**64}", headers=alice.headers)

    assert response.status_code == 422
    assert huge.status_code == 422
