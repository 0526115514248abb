"""Posting, reading and listing boards."""

from __future__ import annotations

from datetime import datetime

import pytest


async def test_create_returns_the_board(client, alice):
    response = await client.post(
        "/boards", json={"title": "  morning run  ", "content": "6am"}, headers=alice.headers
    )

    assert response.status_code == 201
    board = response.json()
    assert set(board) == {
        "id",
        "title",
        "content",
        "writer",
        "status",
        "applicantCount",
        "createdAt",
    }
    assert isinstance(board["id"], int)
    assert board["title"] == "morning run"  # trimmed
    assert board["content"] == "6am"
    assert board["writer"] == alice.ref
    assert board["status"] == "open"
    assert board["applicantCount"] == 0
    assert datetime.fromisoformat(board["createdAt"]).tzinfo is not None


async def test_content_is_optional(client, alice):
    response = await client.post("/boards", json={"title": "duo"}, headers=alice.headers)

    assert response.status_code == 201
    assert response.json()["content"] == ""


async def test_get_returns_what_was_created(client, api, alice, bob):
    created = await api.create_board(alice, title="study mate", content="linear algebra")

    response = await client.get(f"/boards/{created['id']}", headers=bob.headers)

    assert response.status_code == 200
    assert response.json() == created


async def test_get_unknown_board_is_404(client, alice):
    response = await client.get("/boards/999999999", headers=alice.headers)

    assert response.status_code == 404
    assert response.json()["code"] == "board_not_found"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "title"),
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "x" * 101}, "title"),
        ({"title": 5}, "title"),
        ({"title": "ok", "content": "x" * 5001}, "content"),
        ({"title": "ok", "content": ["not", "text"]}, "content"),
    ],
)
async def test_invalid_board_is_422_with_code_and_message(client, alice, body, field):
    response = await client.post("/boards", json=body, headers=alice.headers)

    assert response.status_code == 422
    error = response.json()
    assert error["code"] == "validation_error"
    assert field in error["message"]


async def test_limits_are_inclusive(client, alice):
    response = await client.post(
        "/boards", json={"title": "t" * 100, "content": "c" * 5000}, headers=alice.headers
    )

    assert response.status_code == 201


async def test_malformed_json_is_422(client, alice):
    response = await client.post(
        "/boards",
        content=b"{not json",
        headers={**alice.headers, "Content-Type": "application/json"},
    )

    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_unicode_survives_the_round_trip(client, api, alice):
    created = await api.create_board(alice, title="러닝 메이트 🏃", content="한강 🌊")

    response = await client.get(f"/boards/{created['id']}", headers=alice.headers)

    assert response.json()["title"] == "러닝 메이트 🏃"
    assert response.json()["content"] == "한강 🌊"


async def test_list_is_newest_first(client, api, alice):
    ids = [(await api.create_board(alice, title=f"board {i}"))["id"] for i in range(3)]

    response = await client.get("/boards", headers=alice.headers)

    assert response.status_code == 200
    page = response.json()
    assert [b["id"] for b in page["items"]] == ids[::-1]
    assert page["nextCursor"] is None


async def test_cursor_walks_every_board_exactly_once(client, api, alice):
    ids = [(await api.create_board(alice, title=f"board {i}"))["id"] for i in range(7)]

    seen: list[int] = []
    pages = 0
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/boards", params=params, headers=alice.headers)).json()
        pages += 1
        seen += [b["id"] for b in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break

    assert seen == sorted(ids, reverse=True)
    assert pages == 3  # 3 + 3 + 1


async def test_exact_multiple_of_the_limit_ends_without_an_empty_page(client, api, alice):
    for i in range(4):
        await api.create_board(alice, title=f"board {i}")

    first = (await client.get("/boards?limit=2", headers=alice.headers)).json()
    second = (
        await client.get(f"/boards?limit=2&cursor={first['nextCursor']}", headers=alice.headers)
    ).json()

    assert len(second["items"]) == 2
    assert second["nextCursor"] is None


async def test_default_limit_is_20(client, api, alice):
    for i in range(21):
        await api.create_board(alice, title=f"board {i}")

    page = (await client.get("/boards", headers=alice.headers)).json()

    assert len(page["items"]) == 20
    assert page["nextCursor"] is not None


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=101", "limit=x", "status=gone", "cursor=not-a-cursor", "cursor=YjA"],
)
async def test_bad_list_parameters_are_422(client, alice, query):
    response = await client.get(f"/boards?{query}", headers=alice.headers)

    assert response.status_code == 422
    assert {"code", "message"} <= set(response.json())


async def test_q_searches_title_and_content(client, api, alice):
    in_title = await api.create_board(alice, title="Tennis partner", content="weekends")
    in_content = await api.create_board(alice, title="sports", content="tennis or squash")
    await api.create_board(alice, title="chess", content="online")

    page = (await client.get("/boards", params={"q": "tennis"}, headers=alice.headers)).json()

    assert [b["id"] for b in page["items"]] == [in_content["id"], in_title["id"]]


@pytest.mark.parametrize("wildcard", ["%", "_", "\\", "/"])
async def test_q_matches_like_wildcards_literally(client, api, alice, wildcard):
    literal = await api.create_board(alice, title=f"100{wildcard} effort")
    await api.create_board(alice, title="100 effort")
    await api.create_board(alice, title="100x effort")

    page = (
        await client.get("/boards", params={"q": f"100{wildcard}"}, headers=alice.headers)
    ).json()

    assert [b["id"] for b in page["items"]] == [literal["id"]]


async def test_status_filter_and_q_combine_with_the_cursor(client, api, alice, bob):
    open_ids = []
    for i in range(5):
        board = await api.create_board(alice, title=f"gym {i}")
        if i % 2:
            await client.delete(f"/boards/{board['id']}", headers=alice.headers)
        else:
            open_ids.append(board["id"])
    await api.create_board(alice, title="swim")

    seen: list[int] = []
    params: dict[str, str | int] = {"status": "open", "q": "gym", "limit": 1}
    while True:
        page = (await client.get("/boards", params=params, headers=bob.headers)).json()
        assert all(b["status"] == "open" for b in page["items"])
        seen += [b["id"] for b in page["items"]]
        if page["nextCursor"] is None:
            break
        params["cursor"] = page["nextCursor"]

    assert seen == open_ids[::-1]
    closed = (await client.get("/boards?status=closed", headers=bob.headers)).json()
    assert len(closed["items"]) == 2
