"""Reports: stored with the named messages, the reporter's block follows, rate-limited, and
listed for operators only."""

from __future__ import annotations

import pytest

from duochat_common.events.schemas import UserBlocked

from .conftest import make_settings

LIMIT = 3


@pytest.fixture
def settings(database_url, prefix, redis_shape):
    return make_settings(database_url, prefix, reports_per_window=LIMIT)


async def report(client, who, **body):
    return await client.post("/boards/reports", json=body, headers=who.headers)


async def test_a_report_is_stored_and_blocks(client, api, alice, bob, olive, events, chat_messages):
    board = await api.create_board(alice)
    room = await api.apply(bob, board["id"])
    chat_messages.add(room["roomId"], 3, "alice", "send me the money first")
    chat_messages.add(room["roomId"], 5, "alice", "not this one")

    filed = await report(
        client,
        bob,
        roomId=room["roomId"],
        reason="scam",
        note="asked for money",
        messageIds=[7, 3, 7],
    )

    assert filed.status_code == 201, filed.text
    body = filed.json()
    assert body["reporter"] == bob.ref and body["reported"] == alice.ref
    assert (body["reason"], body["note"], body["messageIds"]) == ("scam", "asked for money", [3, 7])
    assert (body["roomId"], body["boardId"]) == (room["roomId"], None)
    # chat's copy of the named messages (id 7 chat does not have), asked as the reporter.
    assert [(m["id"], m["sender"], m["message"]) for m in body["messages"]] == [
        (3, "alice", "send me the money first")
    ]
    assert chat_messages.asked == [(room["roomId"], bob.token)]
    blocks = (await client.get("/boards/blocks", headers=bob.headers)).json()["items"]
    assert [b["user"] for b in blocks] == [alice.ref]
    blocked = UserBlocked.parse((await events())[-1])
    assert (blocked.blocker.id, blocked.blocked.id) == (bob.id, alice.id)
    assert (await api.room(bob, room["roomId"]))["status"] == "blocked"

    listed = (await client.get("/boards/reports", headers=olive.headers)).json()
    assert listed["items"] == [body] and listed["nextCursor"] is None


async def test_a_board_can_be_reported_and_operators_page_and_filter(
    client, api, alice, bob, carol, olive
):
    board = await api.create_board(alice)
    other = await api.create_board(carol)
    first = (await report(client, bob, boardId=board["id"], reason="spam")).json()
    second = (await report(client, bob, boardId=other["id"], reason="other")).json()
    assert (first["reported"], first["boardId"]) == (alice.ref, board["id"])

    page = (await client.get("/boards/reports?limit=1", headers=olive.headers)).json()
    assert [r["id"] for r in page["items"]] == [second["id"]]
    rest = (
        await client.get(
            "/boards/reports", params={"cursor": page["nextCursor"]}, headers=olive.headers
        )
    ).json()
    assert [r["id"] for r in rest["items"]] == [first["id"]]
    about = (
        await client.get("/boards/reports", params={"userId": carol.id}, headers=olive.headers)
    ).json()
    assert [r["id"] for r in about["items"]] == [second["id"]]
    for caller in (alice, bob, carol):
        refused = await client.get("/boards/reports", headers=caller.headers)
        assert refused.status_code == 403 and refused.json()["code"] == "not_operator"


async def test_reports_are_rate_limited_per_reporter(client, api, alice, bob, carol):
    boards = [await api.create_board(alice, title=f"b{i}") for i in range(LIMIT + 1)]
    # A report that fails its checks does not count.
    assert (await report(client, bob, boardId=10**9, reason="spam")).status_code == 404
    for board in boards[:LIMIT]:
        assert (await report(client, bob, boardId=board["id"], reason="spam")).status_code == 201

    over = await report(client, bob, boardId=boards[LIMIT]["id"], reason="spam")

    assert over.status_code == 429
    assert over.json()["code"] == "too_many_reports"
    assert 1 <= int(over.headers["retry-after"]) <= 3600
    # Another reporter has a budget of their own.
    assert (await report(client, carol, boardId=boards[0]["id"], reason="abuse")).status_code == 201


@pytest.mark.parametrize(
    "body",
    [
        {"reason": "spam"},  # neither place
        {"reason": "spam", "roomId": "r", "boardId": 1},  # both
        {"reason": "spam", "boardId": 1, "messageIds": [1]},  # messages need their room
        {"reason": "rude", "boardId": 1},
        {"boardId": 1},
        {"reason": "spam", "boardId": 1, "note": "x" * 1001},
        {"reason": "spam", "roomId": "r", "messageIds": list(range(1, 52))},
        {"reason": "spam", "roomId": "r", "messageIds": [0]},
        {"reason": "spam", "boardId": 1, "extra": True},
        {"reason": "spam", "boardId": "one"},
    ],
)
async def test_malformed_reports_are_422(client, bob, body):
    response = await report(client, bob, **body)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"


async def test_reporting_yourself_or_a_room_not_yours_is_refused(client, api, alice, bob, carol):
    board = await api.create_board(alice)
    room = await api.apply(bob, board["id"])
    me = await report(client, alice, boardId=board["id"], reason="spam")
    assert me.status_code == 422 and me.json()["code"] == "cannot_report_self"
    stranger = await report(client, carol, roomId=room["roomId"], reason="spam")
    assert stranger.status_code == 403 and stranger.json()["code"] == "not_member"
    nowhere = await report(client, carol, roomId="no-such-room", reason="spam")
    assert nowhere.status_code == 404 and nowhere.json()["code"] == "room_not_found"


async def test_the_evidence_outlives_an_unsend_and_chat_down_files_nothing(
    client, api, alice, bob, olive, chat_messages
):
    board = await api.create_board(alice)
    room = (await api.apply(bob, board["id"]))["roomId"]
    chat_messages.add(room, 1, "alice", "wire 500 to this account")

    # chat does not answer: 503, nothing stored, no block, and it does not count.
    chat_messages.down = True
    down = await report(client, bob, roomId=room, reason="scam", messageIds=[1])
    assert down.status_code == 503 and down.json()["code"] == "unavailable"
    assert down.headers["retry-after"] == "5"
    assert (await client.get("/boards/reports", headers=olive.headers)).json()["items"] == []
    assert (await client.get("/boards/blocks", headers=bob.headers)).json()["items"] == []

    chat_messages.down = False
    filed = await report(client, bob, roomId=room, reason="scam", messageIds=[1])
    assert filed.status_code == 201, filed.text
    chat_messages.rooms[room].clear()  # unsent (or gone) in chat afterwards
    (listed,) = (await client.get("/boards/reports", headers=olive.headers)).json()["items"]
    assert [m["message"] for m in listed["messages"]] == ["wire 500 to this account"]
    # A report naming no message, or from a board, does not ask chat.
    asked = len(chat_messages.asked)
    other = await api.create_board(alice, title="another")
    assert (await report(client, bob, boardId=other["id"], reason="spam")).status_code == 201
    assert len(chat_messages.asked) == asked
