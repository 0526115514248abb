"""chat's REST routes take only well-formed room ids (issue 12, finding 9): anything else is a
4xx before it reaches the database or boards, never a 500."""

from __future__ import annotations

import httpx
import pytest

BAD_ROOM_IDS = [
    "%00",  # answered 500
    "room%00x",
    "..%2F..%2Fauth%2Fme",
    "%C2%B2",
    "room%20one",
    "r" * 65,
    "%F0%9F%98%80",
]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("room", BAD_ROOM_IDS)
async def test_a_malformed_room_id_is_a_4xx(chat, room: str) -> None:
    _, token = chat.user()
    async with httpx.AsyncClient(base_url=chat.procs[0].http, headers=auth(token)) as http:
        replies = [
            await http.get(f"/chat/rooms/{room}/messages"),
            await http.post(f"/chat/rooms/{room}/read", json={"lastReadId": 1}),
            await http.get(f"/chat/rooms/{room}/presence"),
            await http.delete(f"/chat/rooms/{room}/messages/1"),
        ]
    for reply in replies:
        assert 400 <= reply.status_code < 500, (reply.request.url, reply.text)
        assert "code" in reply.json()


async def test_a_well_formed_room_id_of_someone_else_is_still_403_or_404(chat) -> None:
    alice, _ = chat.user()
    bob, _ = chat.user()
    _, stranger = chat.user()
    room = await chat.room(alice, bob)
    async with httpx.AsyncClient(base_url=chat.procs[0].http) as http:
        reply = await http.get(f"/chat/rooms/{room}/messages", headers=auth(stranger))
    assert reply.status_code in (403, 404)
