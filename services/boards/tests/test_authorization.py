"""Every endpoint, called by an anonymous caller, by users it is not theirs, and by its owner.

Setting of each case: alice wrote a board, bob applied to it (one room), carol is a stranger.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from duochat_common.testing import TestSigner


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # {board} and {room} are filled in per case
    body: dict[str, Any] | None
    # caller -> expected status; "writer" is alice, "applicant" bob, "stranger" carol
    expected: dict[str, int]


MATRIX = {
    "create board": Endpoint("POST", "/boards", {"title": "t"}, {"stranger": 201, "writer": 201}),
    "list boards": Endpoint("GET", "/boards", None, {"stranger": 200, "writer": 200}),
    "get board": Endpoint("GET", "/boards/{board}", None, {"stranger": 200, "writer": 200}),
    "apply": Endpoint(
        "POST",
        "/boards/{board}/apply",
        None,
        # the writer may not apply to their own board
        {"stranger": 201, "writer": 409},
    ),
    "match": Endpoint(
        "POST",
        "/boards/{board}/match",
        {"roomId": "{room}"},
        {"stranger": 403, "applicant": 403, "writer": 200},
    ),
    "close": Endpoint(
        "DELETE",
        "/boards/{board}",
        None,
        {"stranger": 403, "applicant": 403, "writer": 204},
    ),
    "my rooms": Endpoint(
        "GET", "/boards/rooms", None, {"stranger": 200, "applicant": 200, "writer": 200}
    ),
    "rooms I wrote": Endpoint("GET", "/boards/rooms?role=writer", None, {"writer": 200}),
    "rooms I applied from": Endpoint(
        "GET", "/boards/rooms?role=applicant", None, {"applicant": 200}
    ),
    "get room": Endpoint(
        "GET",
        "/boards/rooms/{room}",
        None,
        {"stranger": 403, "applicant": 200, "writer": 200},
    ),
}

CASES = [
    (name, caller, status)
    for name, endpoint in MATRIX.items()
    for caller, status in [("anonymous", 401), *endpoint.expected.items()]
]


def test_the_matrix_covers_every_endpoint(app):
    served = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    covered = {
        (
            e.method,
            e.path.split("?")[0].replace("{board}", "{board_id}").replace("{room}", "{room_id}"),
        )
        for e in MATRIX.values()
    }

    assert served == covered


@pytest.mark.parametrize(("name", "caller", "status"), CASES)
async def test_authorization(client, api, alice, bob, carol, name, caller, status):
    board = await api.create_board(alice)
    room = await api.apply(bob, board["id"])
    endpoint = MATRIX[name]
    fill = {"{board}": str(board["id"]), "{room}": room["roomId"]}
    path = endpoint.path
    for key, value in fill.items():
        path = path.replace(key, value)
    body = (
        {k: fill.get(v, v) for k, v in endpoint.body.items()} if endpoint.body is not None else None
    )
    headers = {
        "anonymous": {},
        "stranger": carol.headers,
        "applicant": bob.headers,
        "writer": alice.headers,
    }[caller]

    response = await client.request(endpoint.method, path, json=body, headers=headers)

    assert response.status_code == status, response.text
    if status >= 400:
        assert {"code", "message"} <= set(response.json())
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
    if caller == "stranger" and name == "my rooms":
        assert response.json() == {"items": []}
    if status in (403, 409):
        # a refused action changes nothing
        after = await client.get(f"/boards/{board['id']}", headers=alice.headers)
        assert after.json()["status"] == "open"
        assert after.json()["applicantCount"] == 1


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        TestSigner().token(101, "alice"),  # signed by a key this service does not trust
        "expired",
        "tampered",
        "refresh",
    ],
)
async def test_bad_tokens_are_401(client, signer, alice, token):
    if token == "expired":
        token = signer.token(101, "alice", ttl=-60)
    elif token == "tampered":
        head, payload, sig = alice.token.split(".")
        token = f"{head}.{payload}.{sig[:-4]}AAAA"
    elif token == "refresh":
        token = signer.token(101, "alice", typ="refresh")

    response = await client.get("/boards", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 401
    assert response.json()["code"] in ("unauthorized", "token_expired")
