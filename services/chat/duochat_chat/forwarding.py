"""Getting each draft to its room's owner, and its outcome back to the socket that sent it.

A draft for a room this instance owns goes straight to the writer. Any other goes to the
owner's inbox stream (``chat:inbox:<instance>``), batched per owner. The owner answers on the
sender instance's delivery stream (see ``delivery``), and ``on_ack`` settles the draft.

A forwarded draft that is not answered in ``resend_s``, or whose owner left the live set, is
sent again to whoever owns the room now. That is safe because every draft carries an
idempotency key: a resend is stored once, and answered with the first id.

Order through a move. A sender's messages to one room are stored in the order it sent them,
even when it does not wait for each receipt and the room changes owner in between:

- on the sending instance, a room's drafts in flight form a *lane* with one destination: a new
  draft whose room now has another owner waits until every earlier one has settled (``_Lane``);
- on any instance, a draft for a room its writer still has queued or in flight goes through
  the writer too, which hands the room's drafts on in their order once they are not its own
  (``MessageWriter.holds``), so none overtakes them on the way to the new owner.

In the steady state a lane never waits: every draft of a room goes the same way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from duochat_chat.drafts import Draft, Stored
from duochat_chat.outbound import Append, Outbound
from duochat_chat.presence import Presence
from duochat_chat.ring import Ring
from duochat_chat.rooms import Rejected
from duochat_chat.writer import MAX_HOPS, MessageWriter
from duochat_common.events.bus import cancel_requested

log = logging.getLogger(__name__)
STREAM_TTL_MS = 3_600_000  # an instance's streams outlive it by an hour at most
TRIM_EVERY_S = 1.0  # how often an instance trims what it has read from its inbox


def _pack(d: Draft) -> list[Any]:
    return [
        d.room_id,
        d.type,
        d.sender_id,
        d.sender_name,
        d.text,
        d.key,
        d.new_status,
        d.origin,
        d.request,
        d.hops,
        d.audience,
        d.sent_ms,
        d.trace,
        d.code,
        d.params,
    ]


def _unpack(item: list[Any]) -> Draft:
    room_id, kind, sender_id, sender_name, text, key, new_status, origin, request, hops = item[:10]
    return Draft(
        room_id,
        kind,
        sender_id,
        sender_name,
        text,
        key=key,
        new_status=new_status,
        origin=origin,
        request=int(request),
        hops=int(hops),
        audience=item[10] if len(item) > 10 else None,
        sent_ms=item[11] if len(item) > 11 else 0,
        trace=item[12] if len(item) > 12 else None,
        code=item[13] if len(item) > 13 else None,
        params=item[14] if len(item) > 14 else None,
    )


@dataclass(slots=True)
class _Lane:
    """A room's drafts from this instance that have not settled: where they went, how many,
    and the drafts held back until they have (the room's owner changed meanwhile)."""

    dest: str = ""
    count: int = 0
    held: deque[Draft] = field(default_factory=deque)


class Router:
    def __init__(
        self,
        *,
        instance: str,
        ring: Ring,
        redis: aioredis.Redis,
        outbound: Outbound,
        presence: Presence,
        inbox_key: Any,
        resend_s: float = 5.0,
        give_up_s: float = 20.0,
    ) -> None:
        self.instance = instance
        self.ring = ring
        self.redis = redis
        self.outbound = outbound
        self.presence = presence
        self.inbox_key = inbox_key  # instance -> its inbox stream
        self.resend_s = resend_s
        self.give_up_s = give_up_s
        self.writer: MessageWriter | None = None  # set once both exist
        self.pending: dict[int, tuple[Draft, float, float, str]] = {}  # request -> draft, ...
        self._seq = 0
        self._out: dict[str, list[list[Any]]] = {}
        self._flush_scheduled = False
        self.forwarded = 0
        self._lanes: dict[str, _Lane] = {}
        self.held = 0  # drafts that waited for a room's earlier ones (a move)

    # -- sending -------------------------------------------------------------------------------

    def submit(self, draft: Draft) -> asyncio.Future[Stored | None]:
        """Store a draft from this instance; the future settles once it is stored (or not)."""
        draft.future = asyncio.get_running_loop().create_future()
        lane = self._lanes.get(draft.room_id)
        if lane is None:
            lane = self._lanes[draft.room_id] = _Lane()
        owner = self.ring.owner(draft.room_id)
        if lane.held or (lane.count and lane.dest != owner):
            lane.held.append(draft)  # the room moved under earlier drafts: after them
            self.held += 1
        else:
            self._enter(lane, draft, owner)
        return draft.future

    def _enter(self, lane: _Lane, draft: Draft, owner: str) -> None:
        lane.dest = owner
        lane.count += 1
        draft.in_lane = True
        self.route(draft)

    def _left_lane(self, draft: Draft) -> None:
        """A draft of this instance's settled: the drafts held behind it may go."""
        draft.in_lane = False
        lane = self._lanes.get(draft.room_id)
        if lane is None:
            return
        lane.count -= 1
        if lane.count > 0:
            return
        while lane.held:
            owner = self.ring.owner(draft.room_id)
            if lane.count and lane.dest != owner:
                return
            self._enter(lane, lane.held.popleft(), owner)
        if lane.count <= 0:
            del self._lanes[draft.room_id]

    def route(self, draft: Draft) -> None:
        """Send a draft on to its room's owner: this instance's writer, or another's inbox;
        behind the writer while it holds drafts of the room (it hands them on, in order)."""
        self._route(draft, behind_writer=True)

    def reroute(self, draft: Draft) -> None:
        """A draft the writer gave back (its room is not this instance's now), in order."""
        self._route(draft, behind_writer=False)

    def _route(self, draft: Draft, *, behind_writer: bool) -> None:
        assert self.writer is not None
        owner = self.ring.owner(draft.room_id)
        if (
            owner == self.instance
            or draft.hops >= MAX_HOPS
            or (behind_writer and self.writer.holds(draft.room_id))
        ):
            # Instances that disagree about the owner for a moment could pass a draft around:
            # after a few hops it is written where it is (a stale owner is fenced anyway).
            self.writer.enqueue(draft)
            return
        self._send(draft, owner)

    def _send(self, draft: Draft, owner: str) -> None:
        if draft.origin is None:
            self._seq += 1
            draft.origin, draft.request = self.instance, self._seq
        if draft.origin == self.instance:
            now = time.monotonic()
            first = self.pending.get(draft.request)
            self.pending[draft.request] = (draft, first[1] if first else now, now, owner)
        draft.hops += 1
        self._out.setdefault(owner, []).append(_pack(draft))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def watch(self, room_id: str) -> None:
        """Tell the room's owner, and every other instance in the room, that this instance has
        a subscriber there now: the owner delivers here from its next message on, and each of
        them picks the owner the same way this instance does (see ``ring``)."""
        self.presence.invalidate(room_id)
        others = set(self.presence.nodes_of(room_id) or ())
        others.add(self.ring.owner(room_id))
        others.discard(self.instance)
        for node in others:
            if self.ring.is_live(node):
                fields = {"w": room_id, "n": self.instance}
                self.outbound.put(Append(self.inbox_key(node), fields, expire_ms=STREAM_TTL_MS))

    def _flush(self) -> None:
        self._flush_scheduled = False
        out, self._out = self._out, {}
        for owner, items in out.items():
            self.forwarded += len(items)
            fields = {"d": orjson.dumps(items)}
            self.outbound.put(Append(self.inbox_key(owner), fields, expire_ms=STREAM_TTL_MS))

    # -- outcomes ------------------------------------------------------------------------------

    def settle(self, draft: Draft, outcome: Stored | Exception | None) -> None:
        """The outcome of a draft sent from this instance."""
        if draft.origin == self.instance:
            self.pending.pop(draft.request, None)
        if draft.in_lane:
            self._left_lane(draft)
        fut = draft.future
        if fut is None or fut.done():
            return
        if isinstance(outcome, Exception):
            fut.set_exception(outcome)
            fut.exception()  # a caller that stopped listening must not log a warning
        else:
            fut.set_result(outcome)

    def on_ack(self, request: int, room_id: str, message_id: int, error: str | None) -> None:
        entry = self.pending.get(request)
        if entry is None:
            return  # answered already (a resend), or given up
        draft = entry[0]
        if error is not None:
            self.settle(draft, Rejected(error))
        else:
            self.settle(draft, Stored(room_id, message_id, None) if message_id else None)

    async def run_resends(self, interval: float = 0.5) -> None:
        while not cancel_requested():
            await asyncio.sleep(interval)
            now = time.monotonic()
            for request, (draft, first, sent, owner) in list(self.pending.items()):
                if now - first > self.give_up_s:
                    self.settle(draft, Rejected("the message could not be stored; try again"))
                elif now - sent > self.resend_s or not self.ring.is_live(owner):
                    draft.hops = 0
                    self.route(draft)
                    if self.ring.owns(draft.room_id):
                        self.pending.pop(request, None)

    # -- the inbox -----------------------------------------------------------------------------

    async def run_inbox(self, *, count: int = 1000, block_ms: int = 1000) -> None:
        """Read this instance's inbox: drafts to write (or pass on), and watch notes."""
        stream = self.inbox_key(self.instance)
        last = "0-0"
        trimmed = time.monotonic()
        backoff = 0.05
        while not cancel_requested():
            try:
                reply: Any = await self.redis.xread({stream: last}, count=count, block=block_ms)
                backoff = 0.05
                if not reply:
                    continue
                for _stream, entries in reply:
                    for entry_id, fields in entries:
                        last = entry_id
                        self._take(fields)
                # What was read goes, at most once a second: a round trip per read cost as
                # much as the read itself under load.
                if time.monotonic() - trimmed >= TRIM_EVERY_S:
                    trimmed = time.monotonic()
                    await self.redis.xtrim(stream, minid=last)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError):
                log.warning("inbox read failed (redis unavailable); retrying")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    def _own(self, draft: Draft) -> Draft:
        """A draft of this instance's that came back (instances disagreed about the owner for
        a moment) is the pending original again: its future is the sender's."""
        if draft.origin != self.instance:
            return draft
        entry = self.pending.get(draft.request)
        if entry is None:
            return draft  # settled already: whatever happens to it now reaches no socket
        entry[0].hops = draft.hops
        return entry[0]

    def _take(self, fields: dict[str, Any]) -> None:
        try:
            watched = fields.get("w")
            if watched is not None:
                self.presence.invalidate(watched)
                node = fields.get("n")
                if node is not None:
                    self.presence.saw_node(watched, node)
            packed = fields.get("d")
            if packed is not None:
                for item in orjson.loads(packed):
                    self.route(self._own(_unpack(item)))
        except Exception:
            log.exception("bad inbox entry")
