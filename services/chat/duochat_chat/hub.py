"""Local subscribers of each room, and delivery to them in id order, with no gap and no repeat.

A room this instance serves keeps ``head``: the highest id up to which it has every message.
Entries arrive from the fan-out stream (or straight from this instance's writer), possibly out
of order: an entry above ``head + 1`` waits in ``pending`` until the ids below it arrive, and
if they do not arrive soon, they are read from the database (the source of truth). A periodic
sweep compares ``head`` with each room's ``last_id`` in the database, which catches a message
whose fan-out entry was lost with nothing after it.

A subscription has a ``cursor``: the last id its client has. ``SUBSCRIBE since:N`` replays from
the database (or the room's recent buffer) until the cursor reaches ``head``, and only then
goes live. Nothing is awaited between that check and going live, so no entry can slip between
the replay and the live stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from duochat_chat.messages import Body
from duochat_common.events.bus import cancel_requested

log = logging.getLogger(__name__)
RECENT = 128
# How long an entry above a hole waits for the missing one before it is read from the database.
# Holes are normal when both members write from different instances: each instance delivers its
# own commit at once, while the other instance's earlier message is still on its way through
# Redis. Reading the hole back is one indexed query, so waiting long only costs latency
# (bench/RESULTS.md, "Notes moved from the code").
GAP_WAIT_S = 0.02
REPLAY_PAGE = 500
_ENTER = '"type":"ENTER"'


class Loader(Protocol):
    async def after(self, room_id: str, after_id: int, limit: int) -> list[tuple[int, str]]: ...

    async def heads(self, room_ids: list[str]) -> dict[str, int]: ...


class Receiver(Protocol):
    """A client connection (the session)."""

    def deliver(self, sub: Subscription, message_id: str, body: Body) -> None: ...


class Subscription:
    __slots__ = ("cursor", "destination", "live", "receiver", "room_id", "sub_id")

    def __init__(self, receiver: Receiver, sub_id: str, room_id: str, destination: str) -> None:
        self.receiver = receiver
        self.sub_id = sub_id
        self.room_id = room_id
        self.destination = destination
        self.cursor = 0
        self.live = False


class RoomState:
    __slots__ = ("gap_task", "head", "pending", "ready", "recent", "stale_since", "subs")

    def __init__(self) -> None:
        self.head: int | None = None
        self.pending: dict[int, Body] = {}
        # The last messages (a list trimmed in halves: a deque costs 600 bytes even when empty),
        # as plain (id, text, size) tuples: the collector stops tracking a tuple that holds only
        # ints and strings, while (id, Body) pairs made the bulk of every full collection pass.
        self.recent: list[tuple[int, str, int]] = []
        self.subs: set[Subscription] = set()
        self.ready: asyncio.Future[None] | None = None
        self.gap_task: asyncio.Task[None] | None = None
        self.stale_since: int | None = None  # head seen behind the database by the last sweep


class Hub:
    def __init__(self, loader: Loader, *, on_presence_change: Callable[[str], None] | None = None):
        self.loader = loader
        self.rooms: dict[str, RoomState] = {}
        self.on_presence_change = on_presence_change
        self._transient_seq = 0
        self.delivered = 0

    # -- subscriptions -----------------------------------------------------------------------

    async def _room(self, room_id: str) -> RoomState:
        room = self.rooms.get(room_id)
        if room is None:
            room = self.rooms[room_id] = RoomState()
        if room.head is None:
            if room.ready is None:
                room.ready = asyncio.get_running_loop().create_future()
                # Registered before the read: entries appended after it are buffered meanwhile.
                try:
                    heads = await self.loader.heads([room_id])
                except BaseException as exc:
                    if isinstance(exc, asyncio.CancelledError):
                        room.ready.cancel()
                    else:
                        room.ready.set_exception(exc)
                        room.ready.exception()  # mark retrieved
                    room.ready = None
                    if not room.subs:
                        self.rooms.pop(room_id, None)
                    raise
                room.head = heads.get(room_id, 0)
                room.ready.set_result(None)
                room.ready = None
                self._advance(room_id, room)
            else:
                await asyncio.shield(room.ready)
        return room

    async def subscribe(
        self,
        receiver: Receiver,
        sub_id: str,
        room_id: str,
        destination: str,
        since: int | None,
        max_replay: int = REPLAY_PAGE,
    ) -> Subscription:
        """Register a subscription; with ``since``, first replay what came after it, at most
        the last ``max_replay`` messages (a client pages older ones through REST)."""
        sub = Subscription(receiver, sub_id, room_id, destination)
        room = await self._room(room_id)
        room.subs.add(sub)
        try:
            assert room.head is not None
            cursor = room.head if since is None else max(since, room.head - max_replay)
            while True:
                head = room.head
                assert head is not None
                if cursor >= head:
                    break
                recent = room.recent
                if recent and recent[0][0] <= cursor + 1:
                    for msg_id, text, size in recent:
                        if msg_id > cursor:
                            receiver.deliver(sub, str(msg_id), Body(text, size))
                            cursor = msg_id
                    continue
                rows = await self.loader.after(room_id, cursor, REPLAY_PAGE)
                if not rows:
                    break
                for msg_id, text in rows:
                    if msg_id > cursor:
                        receiver.deliver(sub, str(msg_id), Body.of(text))
                        cursor = msg_id
            sub.cursor = cursor
            sub.live = True
        except BaseException:
            self.unsubscribe(sub)
            raise
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        room = self.rooms.get(sub.room_id)
        if room is None:
            return
        room.subs.discard(sub)
        sub.live = False
        if not room.subs and room.ready is None:
            if room.gap_task is not None:
                room.gap_task.cancel()
            del self.rooms[sub.room_id]

    # -- entries -----------------------------------------------------------------------------

    def on_entries(self, room_id: str, entries: Iterable[tuple[int, Body]]) -> None:
        room = self.rooms.get(room_id)
        if room is None:
            return
        for msg_id, body in entries:
            if msg_id == 0:
                self._transient(room_id, room, body)
            elif room.head is None or msg_id > room.head:
                room.pending[msg_id] = body
                if self.on_presence_change is not None and body.text.find(_ENTER, 0, 48) != -1:
                    self.on_presence_change(room_id)  # a first visit changes who is here, too
        if room.head is not None and room.pending:
            self._advance(room_id, room)

    def _transient(self, room_id: str, room: RoomState, body: Body) -> None:
        """An announcement (ENTER/QUIT) or a signal (READ, TYPING, DELETED): to every live
        subscription as it comes, outside the id order."""
        head = body.text[:40]
        if '"type":"DELETED"' in head:
            room.recent.clear()  # a replay must not bring an unsent text back: read the db
        elif self.on_presence_change is not None and '"type":"READ"' not in head:
            if '"type":"TYPING"' not in head:
                self.on_presence_change(room_id)
        self._transient_seq += 1
        message_id = f"t{self._transient_seq}"
        for sub in room.subs:
            if sub.live:
                sub.receiver.deliver(sub, message_id, body)

    def _advance(self, room_id: str, room: RoomState) -> None:
        head = room.head
        assert head is not None
        pending = room.pending
        for stale in [i for i in pending if i <= head]:
            del pending[stale]
        while head + 1 in pending:
            head += 1
            body = pending.pop(head)
            room.recent.append((head, body.text, body.size))
            if len(room.recent) > 2 * RECENT:
                del room.recent[:RECENT]
            message_id = str(head)
            for sub in room.subs:
                if sub.live and head > sub.cursor:
                    sub.receiver.deliver(sub, message_id, body)
                    sub.cursor = head
                    self.delivered += 1
        room.head = head
        if pending and room.gap_task is None:
            room.gap_task = asyncio.get_running_loop().create_task(self._fill_gap(room_id, room))

    async def _fill_gap(self, room_id: str, room: RoomState, wait: float = GAP_WAIT_S) -> None:
        """Entries above a hole: give the missing ones a moment, then read them from the db."""
        try:
            await asyncio.sleep(wait)
            while self.rooms.get(room_id) is room and room.head is not None:
                target = max(room.pending, default=0)
                if room.stale_since is not None:
                    target = max(target, room.stale_since)
                if target <= room.head:
                    return
                try:
                    rows = await self.loader.after(room_id, room.head, REPLAY_PAGE)
                except Exception:
                    log.warning("gap fill failed for room %s; retrying", room_id)
                    await asyncio.sleep(1.0)
                    continue
                if not rows:
                    return
                for msg_id, text in rows:
                    if msg_id > room.head:
                        room.pending[msg_id] = Body.of(text)
                self._advance(room_id, room)  # schedules nothing: this task is the gap task
        finally:
            room.gap_task = None

    async def sweep(self) -> None:
        """Catch up rooms whose head is still below what the database had at the last sweep."""
        room_ids = [r for r, s in self.rooms.items() if s.head is not None]
        for start in range(0, len(room_ids), 500):
            chunk = room_ids[start : start + 500]
            heads = await self.loader.heads(chunk)
            for room_id in chunk:
                room = self.rooms.get(room_id)
                if room is None or room.head is None:
                    continue
                last = heads.get(room_id, 0)
                if last <= room.head:
                    room.stale_since = None
                    continue
                # Behind now is normal under traffic (commits on their way here); behind what
                # the database had a sweep ago means an entry was lost: read it back.
                lost = room.stale_since is not None and room.head < room.stale_since
                if lost and room.gap_task is None:
                    room.gap_task = asyncio.get_running_loop().create_task(
                        self._fill_gap(room_id, room, wait=0)
                    )
                room.stale_since = last

    async def run_sweeper(self, interval: float, sleep: Callable[[float], Awaitable[None]]) -> None:
        while not cancel_requested():
            await sleep(interval)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("sweep failed; retrying", exc_info=False)
