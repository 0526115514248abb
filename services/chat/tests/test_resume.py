"""``since`` resume: every message after the id, exactly once, then live; also while both
members send at once and reconnect at random to either instance (a property test)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from duochat_testing.chat import StompClient, collect


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def stored_ids(chat, room: str, token: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after = 0
    async with httpx.AsyncClient(base_url=chat.procs[0].http) as http:
        while True:
            page = (
                await http.get(
                    f"/chat/rooms/{room}/messages",
                    params={"after": after, "limit": 200},
                    headers=auth(token),
                )
            ).json()
            out.extend(page["items"])
            if not page["hasMore"]:
                return out
            after = out[-1]["id"]


async def test_since_replays_exactly_what_was_missed(chat) -> None:
    alice, ta = chat.user()
    bob, tb = chat.user()
    room = await chat.room(alice, bob)
    a = await chat.client(0, ta)
    await a.subscribe(room)
    for i in range(30):
        await (await a.send(room, f"m{i}"))
    history = await stored_ids(chat, room, tb)
    cut = history[10]["id"]
    b = await chat.client(1, tb)
    await b.subscribe(room, since=cut)
    replayed = await collect(b, len(history) - 11, kind=None)
    assert [m["id"] for m in replayed] == [m["id"] for m in history[11:]]
    # then live, with no repeat
    await (await a.send(room, "live"))
    (live,) = await collect(b, 1)
    assert live["message"] == "live"
    assert live["id"] in (history[-1]["id"] + 1, history[-1]["id"] + 2)  # b's ENTER may precede


class Member:
    """One side of the conversation: its current client and everything it has seen."""

    def __init__(self, chat, token: str, room: str) -> None:
        self.chat, self.token, self.room = chat, token, room
        self.client: StompClient | None = None
        self.seen: list[dict[str, Any]] = []
        self.acked: list[int] = []

    def take(self, msg: dict[str, Any]) -> None:
        if msg.get("id") is None:
            return
        last = self.seen[-1]["id"] if self.seen else 0
        assert msg["id"] == last + 1, f"gap or repeat: got {msg['id']} after {last}"
        self.seen.append({k: v for k, v in msg.items() if k != "_subscription"})

    def drain(self) -> None:
        assert self.client is not None
        while not self.client.messages.empty():
            self.take(self.client.messages.get_nowait())

    async def connect(self, proc: int) -> None:
        if self.client is not None:
            await self.client.close()
            self.drain()
        self.client = await StompClient.open(self.chat.procs[proc].ws, self.token)
        since = self.seen[-1]["id"] if self.seen else 0
        await self.client.subscribe(self.room, since=since)

    async def send(self, n: int, tag: str) -> None:
        assert self.client is not None
        futs = [await self.client.send(self.room, f"{tag}-{i}") for i in range(n)]
        for fut in futs:
            assert fut is not None
            with contextlib.suppress(Exception):  # a reconnect may cut a receipt short
                frame = await fut
                self.acked.append(int((frame.get("receipt-id") or "r0")[1:]))
            self.drain()

    async def run(self, steps: list[tuple[str, int]], name: str) -> None:
        for n, (kind, arg) in enumerate(steps):
            if kind == "send":
                await self.send(arg, f"{name}{n}")
            else:
                await self.connect(arg)
            self.drain()

    async def settle(self, last_id: int) -> None:
        assert self.client is not None
        async with asyncio.timeout(15):
            while not self.seen or self.seen[-1]["id"] < last_id:
                self.take(await self.client.messages.get())


steps = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.integers(1, 4)),
        st.tuples(st.just("reconnect"), st.integers(0, 1)),
    ),
    min_size=3,
    max_size=8,
)


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(a_steps=steps, b_steps=steps, a_proc=st.integers(0, 1), b_proc=st.integers(0, 1))
async def test_since_resume_with_concurrent_senders_and_reconnects(
    chat, a_steps: list[tuple[str, int]], b_steps: list[tuple[str, int]], a_proc: int, b_proc: int
) -> None:
    alice, ta = chat.user()
    bob, tb = chat.user()
    room = await chat.room(alice, bob)
    a, b = Member(chat, ta, room), Member(chat, tb, room)
    await asyncio.gather(a.connect(a_proc), b.connect(b_proc))
    try:
        await asyncio.gather(a.run(a_steps, "a"), b.run(b_steps, "b"))
        history = await stored_ids(chat, room, ta)
        await asyncio.gather(a.settle(history[-1]["id"]), b.settle(history[-1]["id"]))
        assert a.seen == history
        assert b.seen == history
        talks = [m["message"] for m in history if m["type"] == "TALK"]
        assert len(talks) == len(set(talks))  # stored once each
    finally:
        for member in (a, b):
            if member.client is not None:
                await member.client.close()
