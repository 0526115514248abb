"""Leaving a room: read-only for both, the other told (``room.left``), no longer counted; the
rooms list's ``ended`` filter; muting."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from duochat_boards.models import Room, utcnow
from duochat_common.events.schemas import RoomLeft, RoomMuted


async def test_an_applicant_who_leaves_is_no_longer_counted(client, api, alice, bob, carol, events):
    board = await api.create_board(alice, title="evening swim")
    room = await api.apply(bob, board["id"])
    await api.apply(carol, board["id"])
    assert (await api.board(alice, board["id"]))["applicantCount"] == 2

    left = await client.post(f"/boards/rooms/{room['roomId']}/leave", headers=bob.headers)

    assert left.status_code == 200, left.text
    body = left.json()
    assert body["status"] == "left"
    assert body["leftBy"] == bob.ref
    assert body["endedAt"] is not None
    assert (await api.board(alice, board["id"]))["applicantCount"] == 1
    # The writer sees the same room, read-only, and who left.
    seen = await api.room(alice, room["roomId"])
    assert (seen["status"], seen["leftBy"]) == ("left", bob.ref)
    event = (await events())[-1]
    assert event.type == "room.left"
    assert RoomLeft.parse(event).model_dump(by_alias=True) == {
        "room": {
            "roomId": room["roomId"],
            "boardId": board["id"],
            "boardTitle": "evening swim",
            "writer": alice.ref,
            "applicant": bob.ref,
        },
        "by": bob.ref,
    }


async def test_leaving_twice_is_the_same_answer_and_the_other_cannot_leave_after(
    client, api, alice, bob, events
):
    board = await api.create_board(alice)
    room = await api.apply(bob, board["id"])
    path = f"/boards/rooms/{room['roomId']}/leave"
    assert (await client.post(path, headers=bob.headers)).status_code == 200
    count = len(await events())

    again = await client.post(path, headers=bob.headers)
    other = await client.post(path, headers=alice.headers)

    assert again.status_code == 200 and again.json()["status"] == "left"
    assert other.status_code == 409 and other.json()["code"] == "room_read_only"
    assert len(await events()) == count  # nothing new to tell
    assert (await api.board(alice, board["id"]))["applicantCount"] == 0


async def test_the_writer_can_leave_a_matched_room(client, api, alice, bob):
    board = await api.create_board(alice)
    room = await api.apply(bob, board["id"])
    matched = await client.post(
        f"/boards/{board['id']}/match", json={"roomId": room["roomId"]}, headers=alice.headers
    )
    assert matched.status_code == 200

    left = await client.post(f"/boards/rooms/{room['roomId']}/leave", headers=alice.headers)

    assert left.status_code == 200
    assert (left.json()["status"], left.json()["leftBy"]) == ("left", alice.ref)
    assert (await api.board(bob, board["id"]))["status"] == "matched"


async def test_a_decided_room_cannot_be_left(client, api, alice, bob, carol):
    board = await api.create_board(alice)
    lost = await api.apply(bob, board["id"])
    won = await api.apply(carol, board["id"])
    await client.post(
        f"/boards/{board['id']}/match", json={"roomId": won["roomId"]}, headers=alice.headers
    )

    refused = await client.post(f"/boards/rooms/{lost['roomId']}/leave", headers=bob.headers)

    assert refused.status_code == 409 and refused.json()["code"] == "room_read_only"
    assert (await api.room(bob, lost["roomId"]))["status"] == "rejected"


async def test_a_left_room_is_not_decided_again(client, api, alice, bob, carol, events):
    board = await api.create_board(alice)
    gone = await api.apply(bob, board["id"])
    stays = await api.apply(carol, board["id"])
    await client.post(f"/boards/rooms/{gone['roomId']}/leave", headers=bob.headers)

    pick_gone = await client.post(
        f"/boards/{board['id']}/match", json={"roomId": gone["roomId"]}, headers=alice.headers
    )
    assert pick_gone.status_code == 409 and pick_gone.json()["code"] == "room_read_only"
    closed = await client.delete(f"/boards/{board['id']}", headers=alice.headers)
    assert closed.status_code == 204

    last = (await events())[-1]
    assert last.type == "board.closed"
    assert [r["roomId"] for r in last.data["rooms"]] == [stays["roomId"]]
    assert (await api.room(bob, gone["roomId"]))["status"] == "left"
    assert (await api.room(carol, stays["roomId"]))["status"] == "closed"


async def test_the_rooms_list_keeps_ended_rooms_for_30_days_unless_asked(
    api, client, alice, bob, carol, db
):
    board = await api.create_board(alice)
    live = await api.apply(bob, board["id"])
    other = await api.create_board(carol)
    old = await api.apply(bob, other["id"])
    recent = await api.apply(bob, (await api.create_board(carol, title="b"))["id"])
    for room in (old, recent):
        await client.post(f"/boards/rooms/{room['roomId']}/leave", headers=bob.headers)
    async with db.session() as session:
        await session.execute(
            update(Room)
            .where(Room.room_id == old["roomId"])
            .values(ended_at=utcnow() - timedelta(days=31))
        )
        await session.commit()

    def ids(rooms):
        return {r["roomId"] for r in rooms}

    assert ids(await api.rooms(bob)) == {live["roomId"], recent["roomId"]}
    assert ids(await api.rooms(bob, ended="recent")) == {live["roomId"], recent["roomId"]}
    assert ids(await api.rooms(bob, ended="exclude")) == {live["roomId"]}
    assert ids(await api.rooms(bob, ended="include")) == {
        live["roomId"],
        recent["roomId"],
        old["roomId"],
    }
    assert ids(await api.rooms(bob, ended="exclude", role="writer")) == set()
    bad = await client.get("/boards/rooms", params={"ended": "never"}, headers=bob.headers)
    assert bad.status_code == 422
    # The room itself is still there for its members.
    assert (await api.room(bob, old["roomId"]))["status"] == "left"


async def test_mute_is_listed_per_member_and_announced_once_per_change(
    client, api, alice, bob, events
):
    board = await api.create_board(alice)
    room = await api.apply(bob, board["id"])
    path = f"/boards/rooms/{room['roomId']}/mute"
    before = len(await events())

    first = await client.put(path, headers=bob.headers)
    again = await client.put(path, headers=bob.headers)

    assert first.status_code == again.status_code == 200
    assert first.json()["muted"] is True
    assert [r["muted"] for r in await api.rooms(bob)] == [True]
    assert [r["muted"] for r in await api.rooms(alice)] == [False]  # bob's mute only
    assert (await api.room(bob, room["roomId"]))["muted"] is True
    unmuted = await client.delete(path, headers=bob.headers)
    assert unmuted.status_code == 200 and unmuted.json()["muted"] is False
    assert (await client.delete(path, headers=bob.headers)).status_code == 200

    changes = [RoomMuted.parse(e) for e in (await events())[before:]]
    assert [(c.muted, c.version, c.user.id, c.room_id) for c in changes] == [
        (True, 1, bob.id, room["roomId"]),
        (False, 2, bob.id, room["roomId"]),
    ]


async def test_unknown_rooms_are_404(client, bob):
    for method, path in [
        ("POST", "/boards/rooms/nope/leave"),
        ("PUT", "/boards/rooms/nope/mute"),
        ("DELETE", "/boards/rooms/nope/mute"),
    ]:
        response = await client.request(method, path, headers=bob.headers)
        assert response.status_code == 404 and response.json()["code"] == "room_not_found"
