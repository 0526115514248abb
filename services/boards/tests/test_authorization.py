"""Every endpoint, called by an anonymous caller, by users it is not theirs, by its owner, and
by an operator (a token with the ``role: operator`` claim).

Setting of each case: alice wrote a board, bob applied to it (one room), carol is a stranger,
olive an operator who is neither member.
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
    # caller -> expected status; "writer" is alice, "applicant" bob, "stranger" carol,
    # "operator" olive
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
        {"stranger": 403, "operator": 403, "applicant": 200, "writer": 200},
    ),
    "leave room": Endpoint(
        "POST",
        "/boards/rooms/{room}/leave",
        None,
        {"stranger": 403, "operator": 403, "applicant": 200, "writer": 200},
    ),
    "mute room": Endpoint(
        "PUT",
        "/boards/rooms/{room}/mute",
        None,
        {"stranger": 403, "operator": 403, "applicant": 200, "writer": 200},
    ),
    "unmute room": Endpoint(
        "DELETE",
        "/boards/rooms/{room}/mute",
        None,
        {"stranger": 403, "operator": 403, "applicant": 200, "writer": 200},
    ),
    # Blocks are the caller's own: everyone lists and changes only theirs.
    "my blocks": Endpoint(
        "GET",
        "/boards/blocks",
        None,
        {"stranger": 200, "operator": 200, "applicant": 200, "writer": 200},
    ),
    "block": Endpoint(
        "POST",
        "/boards/blocks",
        {"userId": "{applicant_id}"},
        # the applicant would block themselves
        {"stranger": 201, "operator": 201, "applicant": 422, "writer": 201},
    ),
    "unblock": Endpoint(
        "DELETE",
        "/boards/blocks/{applicant_id}",
        None,
        {"stranger": 204, "operator": 204, "applicant": 204, "writer": 204},
    ),
    "report": Endpoint(
        "POST",
        "/boards/reports",
        {"roomId": "{room}", "reason": "spam"},
        {"stranger": 403, "operator": 403, "applicant": 201, "writer": 201},
    ),
    "list reports": Endpoint(
        "GET",
        "/boards/reports",
        None,
        {"stranger": 403, "applicant": 403, "writer": 403, "operator": 200},
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
            e.path.split("?")[0]
            .replace("{board}", "{board_id}")
            .replace("{room}", "{room_id}")
            .replace("{applicant_id}", "{user_id}"),
        )
        for e in MATRIX.values()
    }

    assert served == covered


@pytest.mark.parametrize(("name", "caller", "status"), CASES)
async def test_authorization(client, api, alice, bob, carol, olive, name, caller, status):
    board = await api.create_board(alice)
    room = await api.apply(bob, board["id"])
    endpoint = MATRIX[name]
    fill: dict[str, Any] = {
        "{board}": str(board["id"]),
        "{room}": room["roomId"],
        "{applicant_id}": bob.id,
    }
    path = endpoint.path
    for key, value in fill.items():
        path = path.replace(key, str(value))
    body = (
        {k: fill.get(v, v) for k, v in endpoint.body.items()} if endpoint.body is not None else None
    )
    headers = {
        "anonymous": {},
        "stranger": carol.headers,
        "applicant": bob.headers,
        "writer": alice.headers,
        "operator": olive.headers,
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
