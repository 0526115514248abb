"""Delivery: a stored batch goes to this instance's subscribers at once, and to each other
instance that has subscribers in its rooms through that instance's own stream
(``chat:deliver:<instance>``), together with the outcomes of the drafts that instance forwarded.

So an instance reads only the traffic of rooms its own sockets are in, and the work of each
instance grows with its own traffic, not the cluster's. Each stream entry carries a batch, each
field JSON: ``m`` (the messages, ``[[roomId, [[id, body, size], ...]], ...]``: id ``0`` for a
transient ENTER/QUIT, the MESSAGE body as clients get it and its UTF-8 size), ``a`` (acks:
``[[request, roomId, id, error], ...]``), and ``t`` (when the batch's first message was sent, in
ms: the receiving instance's send-to-deliver sample). A batch is a few fields, not three per
message: redis-py packs and parses each field in Python, and orjson encodes the batch in one
call. (Through a rolling deploy from the former layout, fields ``r<k>``/``i<k>``/
``b<k>``, an entry of the other layout is skipped: its messages arrive by the hub's gap fill and
sweep, a second or two late, and its acks, unchanged, still settle.)

The streams are the fast path. A message whose entry never arrives (an instance killed between
commit and append, a Redis restart) is found by the hub's gap fill and sweep, which read the
database.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from duochat_chat.drafts import Draft, Outcome, Stored
from duochat_chat.forwarding import STREAM_TTL_MS, Router
from duochat_chat.hub import Hub
from duochat_chat.messages import Body
from duochat_chat.metrics import ChatMetrics
from duochat_chat.outbound import Append, Outbound
from duochat_chat.outbox import OutboxRelay
from duochat_chat.presence import Here, Presence
from duochat_common.events.bus import cancel_requested

log = logging.getLogger(__name__)


class Delivery:
    def __init__(
        self,
        *,
        instance: str,
        hub: Hub,
        router: Router,
        outbound: Outbound,
        relay: OutboxRelay,
        presence: Presence,
        deliver_key: Callable[[str], str],
        metrics: ChatMetrics | None = None,
    ) -> None:
        self.instance = instance
        self.hub = hub
        self.router = router
        self.outbound = outbound
        self.relay = relay
        self.presence = presence
        self.deliver_key = deliver_key
        self.metrics = metrics or ChatMetrics()

    def stored(
        self,
        drafts: Sequence[Draft],
        outcome: Sequence[Outcome],
        present: dict[str, Here],
        events: list[str],
        outbox_id: str,
    ) -> None:
        """The writer's outcome for a batch (the writer's ``deliver``)."""
        me = self.instance
        acks: dict[str, list[list[Any]]] = {}
        by_room: dict[str, list[tuple[int, Body]]] = {}
        for draft, result in zip(drafts, outcome, strict=True):
            if draft.origin is None or draft.origin == me:
                self.router.settle(draft, result)
            else:
                acks.setdefault(draft.origin, []).append(_ack(draft, result))
            if isinstance(result, Stored) and result.body is not None:
                by_room.setdefault(result.room_id, []).append((result.id, result.body))
        messages: dict[str, list[Any]] = {}  # node -> [[room, [[id, body, size], ...]], ...]
        for room_id, entries in by_room.items():
            self.hub.on_entries(room_id, entries)
            here = present.get(room_id)
            nodes = [n for n in here.nodes if n != me] if here is not None else ()
            if nodes:
                packed = [room_id, [[i, b.text, b.size] for i, b in entries]]
                for node in nodes:
                    messages.setdefault(node, []).append(packed)
        out: dict[str, dict[str, Any]] = {}
        for node, rooms in messages.items():
            out[node] = {"m": orjson.dumps(rooms)}
        sent_ms = drafts[0].sent_ms if by_room else 0  # one sample per batch (see metrics)
        if sent_ms:
            self.metrics.delivered_by_owner.observe(max(0.0, time.time() - sent_ms / 1000))
            for fields in out.values():
                fields["t"] = sent_ms
        for node, node_acks in acks.items():
            out.setdefault(node, {})["a"] = orjson.dumps(node_acks)
        for node, fields in out.items():
            self.outbound.put(Append(self.deliver_key(node), fields, expire_ms=STREAM_TTL_MS))
        if events:
            self.relay.publish(outbox_id, events)

    async def transient(self, room_id: str, body: Body) -> None:
        """An ENTER/QUIT that is announced, not stored: to whoever is in the room now."""
        here = (await self.presence.snapshot([room_id]))[room_id]
        self.hub.on_entries(room_id, [(0, body)])
        for node in here.nodes:
            if node != self.instance:
                fields = {"m": orjson.dumps([[room_id, [[0, body.text, body.size]]]])}
                self.outbound.put(Append(self.deliver_key(node), fields, expire_ms=STREAM_TTL_MS))

    async def run_reader(self, *, count: int = 1000, block_ms: int = 1000) -> None:
        """Read this instance's delivery stream from where it started."""
        stream = self.deliver_key(self.instance)
        redis: aioredis.Redis = self.outbound.redis
        last: str | None = None
        backoff = 0.05
        while not cancel_requested():
            try:
                if last is None:
                    newest: Any = await redis.xrevrange(stream, count=1)
                    last = str(newest[0][0]) if newest else "0-0"
                reply: Any = await redis.xread({stream: last}, count=count, block=block_ms)
                backoff = 0.05
                if not reply:
                    continue
                for _stream, entries in reply:
                    for entry_id, fields in entries:
                        last = entry_id
                        self._take(entry_id, fields)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError):
                log.warning("delivery read failed (redis unavailable); retrying")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    def _take(self, entry_id: str, fields: dict[str, Any]) -> None:
        try:
            hub = self.hub
            sent_ms = fields.get("t")
            messages = fields.get("m")
            if messages is not None:
                for room_id, entries in orjson.loads(messages):
                    hub.on_entries(
                        room_id, [(int(i), Body(text, size)) for i, text, size in entries]
                    )
            if sent_ms is not None:
                sent = int(sent_ms) / 1000
                self.metrics.delivered_from_stream.observe(max(0.0, time.time() - sent))
            acks = fields.get("a")
            if acks is not None:
                for request, room_id, message_id, error in orjson.loads(acks):
                    self.router.on_ack(int(request), room_id, int(message_id), error)
        except Exception:
            log.exception("bad delivery entry %s", entry_id)


def _ack(draft: Draft, result: Outcome) -> list[Any]:
    if isinstance(result, Exception):
        return [draft.request, draft.room_id, 0, str(result)]
    return [draft.request, draft.room_id, result.id if result is not None else 0, None]
