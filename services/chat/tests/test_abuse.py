"""What an attacker on the open internet tried against chat (the chat findings of the security
review): replays that multiply traffic, many sockets and fast sends from one user, room ids that
are paths, and a bad frame hidden behind good ones."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
from websockets.exceptions import ConnectionClosed

from duochat_testing.chat import StompClient, StompError


async def test_one_subscription_per_room_per_socket(chat) -> None:
    alice, ta = chat.user()
    bob, _ = chat.user()
    room = await chat.room(alice, bob)
    a = await chat.client(0, ta)
    await a.subscribe(room, sub_id="first")
    try:
        await a.subscribe(room, sub_id="second", since=0)
        raise AssertionError("a second subscription to the same room was accepted")
    except StompError as exc:
        assert "one subscription per room" in str(exc)


async def test_a_replay_is_capped(chat) -> None:
    """``since:0`` on a long room replays only the newest messages (max_replay, 500 by
    default); the client pages the rest through REST."""
    alice, ta = chat.user()
    bob, _ = chat.user()
    room = await chat.room(alice, bob)
    a = await chat.client(0, ta)
    await a.subscribe(room)
    for start in range(0, 520, 40):
        futs = [await a.send(room, f"m{i}") for i in range(start, min(520, start + 40))]
        await asyncio.gather(*(f for f in futs if f is not None))
        await asyncio.sleep(1.0)  # the per-user rate: 20/s with a burst of 100 here
    late = await chat.client(1, ta)
    await late.subscribe(room, since=0)
    await asyncio.sleep(1.0)
    replayed = [m for m in late.frames if m.command == "MESSAGE"]
    assert 0 < len(replayed) <= 500


async def test_sockets_per_user_are_capped_across_instances(chat) -> None:
    """max_sockets_per_user is 6 in this suite's settings: three on each instance, then no
    more, on either; closing one makes room again."""
    _, token = chat.user()
    opened = []
    for i in range(6):
        opened.append(await chat.client(i % 2, token))
    for proc in (0, 1):
        try:
            await chat.client(proc, token)
            raise AssertionError("a seventh socket was accepted")
        except StompError as exc:
            assert "too many connections" in str(exc)
    await opened[0].close()
    await asyncio.sleep(0.5)
    again = await chat.client(0, token)
    assert again.connected.done()


async def test_the_send_rate_is_per_user_across_sockets_and_instances(chat) -> None:
    """Six sockets of one user, three on each instance, sending 60 messages each in about
    1.5 s: each socket stays within its own limit (50/s, burst 100, in this suite); the user's
    (the same, shared by all six) refuses most of them."""
    alice, ta = chat.user()
    bob, _ = chat.user()
    room = await chat.room(alice, bob)
    sockets = [await chat.client(i % 2, ta) for i in range(6)]
    await asyncio.sleep(0.3)
    receipts = []
    for n in range(60):
        for s in sockets:
            if not s.closed.is_set():
                # The server may close a socket (its ERROR) between the check and the send.
                with contextlib.suppress(ConnectionClosed):
                    receipts.append(await s.send(room, f"flood {n}"))
        await asyncio.sleep(0.02)
    done = await asyncio.gather(*(f for f in receipts if f is not None), return_exceptions=True)
    stored = [r for r in done if not isinstance(r, BaseException)]
    # 360 attempts; the user's budget is about the burst plus 50/s for the 1.5 s.
    assert len(stored) < 360 * 0.6
    refused = [s for s in sockets if any("per user" in (e.get("message") or "") for e in s.errors)]
    assert refused, "no socket was told about the per-user limit"


async def test_room_ids_are_checked_before_use(chat) -> None:
    """A room id that is a path never reaches boards (chat used to ask boards for
    ``/boards/rooms/../../auth/me`` with the caller's token)."""
    _, ta = chat.user()
    before = chat.stub.lookups
    a = await chat.client(0, ta)
    for bad in ("../../auth/me", "a/b", "x" * 65, "%2e%2e", "room id"):
        fut = await a.send(bad, "hello")
        assert fut is not None
        try:
            await fut
            raise AssertionError(f"{bad!r} was accepted")
        except (StompError, ConnectionError):
            pass
        a = await chat.client(0, ta)
    async with httpx.AsyncClient(base_url=chat.procs[0].http) as http:
        headers = {"Authorization": f"Bearer {ta}"}
        for bad in ("..%2F..%2Fauth%2Fme", "%00", "a%20b"):
            reply = await http.get(f"/chat/rooms/{bad}/messages", headers=headers)
            assert reply.status_code in (404, 422), (bad, reply.status_code)
    assert chat.stub.lookups == before, "a malformed id reached boards"


async def test_an_error_is_not_lost_behind_good_frames(chat) -> None:
    """One WebSocket message: a good SEND, then a frame that breaks the protocol. The SEND is
    handled (receipted), then the ERROR arrives, then the socket closes."""
    alice, ta = chat.user()
    bob, _ = chat.user()
    room = await chat.room(alice, bob)
    a = await chat.client(0, ta)
    good = (
        "SEND\ndestination:/pub/chat/message\nreceipt:good\n\n"
        f'{{"type":"TALK","roomId":"{room}","message":"before the bad one"}}\x00'
    )
    bad = "NOT-A-COMMAND\n\n\x00"
    await a.ws.send(good + bad)
    async with asyncio.timeout(5):
        await a.closed.wait()
    commands = [f.command for f in a.frames]
    assert "RECEIPT" in commands and commands[-1] == "ERROR", commands


async def test_lone_surrogates_in_a_send_get_an_error(chat) -> None:
    alice, ta = chat.user()
    bob, _ = chat.user()
    room = await chat.room(alice, bob)
    a: StompClient = await chat.client(0, ta)
    body = '{"type":"TALK","roomId":"%s","message":"\\udc80"}' % room  # noqa: UP031
    await a.send_frame("SEND", {"destination": "/pub/chat/message"}, body.encode())
    async with asyncio.timeout(5):
        await a.closed.wait()
    assert a.errors and "Unicode" in (a.errors[0].get("message") or "")


async def test_json_nested_thousands_deep_gets_an_error(chat) -> None:
    _, ta = chat.user()
    a = await chat.client(0, ta)
    for destination in ("/pub/chat/message", "/pub/chat/typing"):
        body = ("[" * 8000 + "]" * 8000).encode()
        await a.send_frame("SEND", {"destination": destination}, body)
        async with asyncio.timeout(5):
            await a.closed.wait()
        assert a.errors and "must be JSON" in (a.errors[-1].get("message") or "")
        a = await chat.client(0, ta)
