"""The router, in process: a draft goes to its room's owner, and a draft that comes back to
the instance that sent it (two instances disagreed about the owner for a moment) still settles
the sender's own future; a sender's drafts keep their order when the room moves under them.
The ring, presence, outbound queue and writer are fakes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from duochat_chat.drafts import Draft, Stored
from duochat_chat.forwarding import Router
from duochat_chat.messages import TALK


class Owners:
    def __init__(self, instance: str, owner: str) -> None:
        self.instance, self.current = instance, owner

    def owner(self, room_id: str) -> str:
        return self.current

    def owns(self, room_id: str) -> bool:
        return self.current == self.instance

    def is_live(self, instance: str) -> bool:
        return True


class Queue:
    def __init__(self) -> None:
        self.appended: list[Any] = []

    def put(self, append: Any) -> None:
        self.appended.append(append)


class Writer:
    def __init__(self) -> None:
        self.drafts: list[Draft] = []
        self.holding: set[str] = set()  # rooms with drafts queued or being written

    def enqueue(self, draft: Draft) -> None:
        self.drafts.append(draft)

    def holds(self, room_id: str) -> bool:
        return room_id in self.holding


class Seen:
    def __init__(self) -> None:
        self.nodes: dict[str, frozenset[str]] = {}

    def invalidate(self, room_id: str) -> None:
        pass

    def nodes_of(self, room_id: str) -> frozenset[str] | None:
        return self.nodes.get(room_id)

    def saw_node(self, room_id: str, node: str) -> None:
        self.nodes[room_id] = self.nodes.get(room_id, frozenset()) | {node}


def router(owner: str) -> tuple[Router, Owners, Queue, Writer, Seen]:
    ring, out, writer, seen = Owners("a", owner), Queue(), Writer(), Seen()
    r = Router(
        instance="a",
        ring=ring,  # type: ignore[arg-type]
        redis=None,  # type: ignore[arg-type]
        outbound=out,  # type: ignore[arg-type]
        presence=seen,  # type: ignore[arg-type]
        inbox_key=lambda node: f"inbox:{node}",
    )
    r.writer = writer  # type: ignore[assignment]
    return r, ring, out, writer, seen


async def test_a_draft_that_comes_back_to_its_sender_settles_the_senders_future() -> None:
    r, ring, out, writer, _ = router(owner="b")
    future = r.submit(Draft("r1", TALK, 1, "alice", "hello", key="k1"))
    await asyncio.sleep(0)  # the forward is flushed on the next loop turn
    (append,) = out.appended
    assert append.stream == "inbox:b" and writer.drafts == []
    assert len(r.pending) == 1

    ring.current = "a"  # b thinks a owns the room: it sends the draft back
    r._take(append.fields)
    (written,) = writer.drafts
    assert written.future is future, "the pending original, not a copy without a future"
    assert written.hops == 1 and written.text == "hello"
    r.settle(written, Stored("r1", 7, None))
    assert (await future) == Stored("r1", 7, None)
    assert r.pending == {}


async def test_a_draft_settled_already_that_comes_back_is_written_without_a_future() -> None:
    r, ring, out, writer, _ = router(owner="b")
    future = r.submit(Draft("r1", TALK, 1, "alice", "hello", key="k1"))
    await asyncio.sleep(0)
    (append,) = out.appended
    r.on_ack(next(iter(r.pending)), "r1", 7, None)  # b answered first
    assert (await future) == Stored("r1", 7, None)
    ring.current = "a"
    r._take(append.fields)  # a late copy: its key makes the writer settle it with id 7
    (written,) = writer.drafts
    assert written.future is None and written.key == "k1"


async def test_a_watch_note_tells_where_the_new_subscriber_is() -> None:
    r, _, out, _, seen = router(owner="a")
    seen.nodes["r1"] = frozenset({"a", "c"})
    r.watch("r1")
    assert [(x.stream, x.fields) for x in out.appended] == [("inbox:c", {"w": "r1", "n": "a"})], (
        "every other instance in the room hears of it (the owner is this one)"
    )
    r._take({"w": "r2", "n": "d"})
    assert seen.nodes["r2"] == frozenset({"d"})
    r._take({"d": json.dumps([["r3"]])})  # a bad entry is logged and skipped


def sent(out: Queue) -> list[tuple[str, list[str]]]:
    """What went to other instances' inboxes: (stream, the drafts' texts)."""
    return [(x.stream, [item[4] for item in json.loads(x.fields["d"])]) for x in out.appended]


def talk(text: str) -> Draft:
    return Draft("r1", TALK, 1, "alice", text, key=text)


async def test_a_draft_waits_for_the_earlier_ones_when_the_room_moved_away() -> None:
    r, ring, out, writer, _ = router(owner="a")
    first = r.submit(talk("m0"))  # a owns the room: to its own writer
    ring.current = "b"  # the room moves while m0 is not written yet
    later = [r.submit(talk(f"m{i}")) for i in (1, 2)]
    await asyncio.sleep(0)
    assert [d.text for d in writer.drafts] == ["m0"] and out.appended == [], "held back"
    assert r.held == 2

    r.settle(writer.drafts[0], Stored("r1", 1, None))  # m0 written (or handed on and stored)
    assert (await first) == Stored("r1", 1, None)
    await asyncio.sleep(0)
    assert sent(out) == [("inbox:b", ["m1", "m2"])], "then the rest, in their order"
    for request in sorted(r.pending):
        r.on_ack(request, "r1", request + 1, None)
    assert [f.result() for f in later] == [Stored("r1", 2, None), Stored("r1", 3, None)]
    assert r._lanes == {}, "a room with nothing in flight keeps no lane"


async def test_drafts_follow_each_other_to_one_owner_without_waiting() -> None:
    r, ring, out, _, _ = router(owner="b")
    for i in range(3):
        r.submit(talk(f"m{i}"))
    await asyncio.sleep(0)
    assert sent(out) == [("inbox:b", ["m0", "m1", "m2"])] and r.held == 0
    ring.current = "c"  # moved from b to c with all three in flight at b
    r.submit(talk("m3"))
    await asyncio.sleep(0)
    assert len(out.appended) == 1, "m3 waits for b's answers"
    for request in sorted(r.pending):
        r.on_ack(request, "r1", request, None)
    await asyncio.sleep(0)
    assert sent(out)[1:] == [("inbox:c", ["m3"])]


async def test_a_forwarded_draft_goes_through_the_writer_while_it_holds_the_room() -> None:
    """Another instance's draft for a room that moved on while this writer still has some of
    its drafts: the writer hands it on after them, not the router before them."""
    r, _, out, writer, _ = router(owner="b")
    writer.holding.add("r1")
    item = ["r1", TALK, 2, "bob", "late", "k9", None, "c", 5, 1]
    r._take({"d": json.dumps([item])})
    await asyncio.sleep(0)
    assert [d.text for d in writer.drafts] == ["late"] and out.appended == []
    r.reroute(writer.drafts[0])  # the writer gives it back once the earlier ones are gone
    await asyncio.sleep(0)
    assert sent(out) == [("inbox:b", ["late"])]
