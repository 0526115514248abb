"""Random and malformed frames against a running chat process: every reply is a well-formed
frame, an ERROR is followed by a close, and the process keeps serving."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from duochat_chat.stomp.frames import SERVER_COMMANDS, Frame, FrameParser, ProtocolError, encode
from duochat_testing.chat import collect

ROOM = "fuzz-room"  # replaced by a real room of the fuzzing user


def frames(room: str) -> st.SearchStrategy[bytes]:
    destinations = st.sampled_from(
        [f"/sub/chat/room/{room}", "/pub/chat/message", "/sub/chat/room/x", "/x", ""]
    )
    bodies = st.one_of(
        st.binary(max_size=64),
        st.builds(
            lambda t, m: json.dumps({"type": t, "roomId": room, "message": m}).encode(),
            st.sampled_from(["TALK", "ENTER", "QUIT", "SYSTEM", "X"]),
            st.text(max_size=30),
        ),
    )
    headers = st.lists(
        st.tuples(
            st.sampled_from(
                ["id", "destination", "receipt", "since", "content-length", "ack", "x", "token"]
            ),
            st.one_of(st.text(max_size=12), destinations),
        ),
        max_size=4,
    )
    structured = st.builds(
        lambda c, h, b: encode(Frame(c, h, b), content_length=False),
        st.sampled_from(["SEND", "SUBSCRIBE", "UNSUBSCRIBE", "ACK", "BEGIN", "DISCONNECT", "NOPE"]),
        headers,
        bodies,
    )
    return st.one_of(structured, st.binary(max_size=100), st.just(b"\n"))


def parse_reply(raw: bytes) -> list[Frame]:
    """A server frame in whichever version was negotiated (1.0 frames are not escaped)."""
    for version in ("1.2", "1.0"):
        parser = FrameParser(commands=SERVER_COMMANDS, max_frame_bytes=1 << 20)
        parser.version = version
        try:
            return parser.feed(raw)
        except ProtocolError:
            if version == "1.0":
                raise
    return []


async def read_replies(ws, within: float) -> tuple[list[Frame], bool]:
    out: list[Frame] = []
    try:
        async with asyncio.timeout(within):
            async for data in ws:
                raw = data.encode() if isinstance(data, str) else data
                out.extend(parse_reply(raw))
    except TimeoutError:
        return out, False
    except ConnectionClosed:
        pass
    return out, True


@pytest.fixture(scope="module")
async def fuzz_room(cluster) -> tuple[str, str]:
    alice, ta = cluster.user()
    bob, _ = cluster.user()
    return await cluster.room(alice, bob), ta


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), authenticate=st.booleans(), as_text=st.booleans(), proc=st.integers(0, 1))
async def test_random_frames_never_break_the_server(
    chat,
    fuzz_room: tuple[str, str],
    data: st.DataObject,
    authenticate: bool,
    as_text: bool,
    proc: int,
) -> None:
    room, token = fuzz_room
    chunks = data.draw(st.lists(frames(room), min_size=1, max_size=5))
    protocols: list[Any] = ["v12.stomp"]
    async with connect(chat.procs[proc].ws, subprotocols=protocols) as ws:
        if authenticate:
            await ws.send(encode(Frame("CONNECT", [("token", token)])).decode())
        for chunk in chunks:
            if as_text:
                await ws.send(chunk.decode("utf-8", "replace"))
            else:
                await ws.send(chunk)
        replies, closed = await read_replies(ws, 0.5)
    for reply in replies:
        assert reply.command in SERVER_COMMANDS
        if reply.command == "ERROR":
            assert reply.get("message")
    if any(r.command == "ERROR" for r in replies):
        assert closed, "an ERROR must be followed by the server closing the socket"
        assert replies[-1].command == "ERROR"
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{chat.procs[proc].http}/healthz", timeout=5)).status_code == 200


async def test_service_still_delivers_after_fuzzing(chat) -> None:
    alice, ta = chat.user()
    bob, tb = chat.user()
    room = await chat.room(alice, bob)
    a = await chat.client(0, ta)
    b = await chat.client(1, tb)
    await b.subscribe(room)
    await (await a.send(room, "still here"))
    (msg,) = await collect(b, 1)
    assert msg["message"] == "still here"


def test_parser_used_here_accepts_server_frames() -> None:
    try:
        FrameParser(commands=SERVER_COMMANDS).feed(encode(Frame("RECEIPT", [("receipt-id", "1")])))
    except ProtocolError as exc:  # pragma: no cover
        raise AssertionError(exc) from exc
