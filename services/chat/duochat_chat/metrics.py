"""chat's own metrics.

The hot path pays for none of them per message. The counts it already keeps as plain integers
(messages stored by the writer, frames delivered by the hub, forwards, ownership changes) are
read when Prometheus scrapes; the histograms take one observation per batch:

- ``duochat_chat_write_batch_size`` and ``duochat_chat_commit_seconds``: each batch the owner's
  writer stores (its size; its inserts and COMMIT, one round trip on MySQL);
- ``duochat_chat_send_to_deliver_seconds``: from a SEND reaching chat to its message handed to
  subscribers, sampled once per batch with the batch's first message (under load a batch holds
  many messages, and its first waited longest, so the quantiles err on the slow side). Label
  ``hop="owner"``: the owner stored it and handed it to its own subscribers and to the other
  instances' streams; ``hop="stream"``: another instance read it from its delivery stream and
  handed it to its subscribers (SEND times come from the sending instance's clock).

``duochat_chat_errors_total`` counts ERROR frames by reason (and is 0 on a healthy instance but
for ``invalid`` and ``denied``, which clients cause).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from prometheus_client import Counter, Histogram

from duochat_common.metrics import LATENCY_BUCKETS, Metrics, Read, Readings

if TYPE_CHECKING:
    from duochat_chat.runtime import Runtime

BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
ERROR_REASONS = (
    "invalid",  # a frame chat cannot act on (bad destination, body, id)
    "denied",  # not signed in, not a member of the room
    "rate_limited",
    "busy",  # the writer's queue is full
    "not_stored",  # the message could not be stored
    "protocol",  # a frame that is not STOMP, too big, or a flood of frames
    "token_expired",
    "internal",
)
CLOUDWATCH = (
    "duochat_chat_connections",
    "duochat_chat_subscriptions",
    "duochat_chat_messages_stored",
    "duochat_chat_messages_delivered",
    "duochat_chat_send_to_deliver_seconds",
    "duochat_chat_commit_seconds",
    "duochat_chat_errors",
)


class ChatMetrics:
    def __init__(self, metrics: Metrics | None = None) -> None:
        registry = (metrics or Metrics()).registry
        self.batch_size = Histogram(
            "duochat_chat_write_batch_size",
            "Messages per batch the owner's writer stores in one transaction",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.commit_seconds = Histogram(
            "duochat_chat_commit_seconds",
            "One batch's inserts and COMMIT",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        send_to_deliver = Histogram(
            "duochat_chat_send_to_deliver_seconds",
            "From a SEND to its message handed to subscribers (one sample per batch)",
            ["hop"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.delivered_by_owner = send_to_deliver.labels("owner")
        self.delivered_from_stream = send_to_deliver.labels("stream")
        self.errors = Counter(
            "duochat_chat_errors",
            "ERROR frames sent to clients, by reason",
            ["reason"],
            registry=registry,
        )
        for reason in ERROR_REASONS:
            self.errors.labels(reason)
        self.rooms_moved = Counter(
            "duochat_chat_rooms_moved",
            "Rooms this instance owned and another instance took over (a join, drain or death)",
            registry=registry,
        )
        self._runtime: Callable[[], Runtime | None] = lambda: None
        registry.register(Readings(self._readings))

    def error(self, reason: str) -> None:
        self.errors.labels(reason).inc()

    def watch(self, runtime: Runtime) -> None:
        """Read the counts ``runtime``'s parts keep, at each scrape."""
        self._runtime = lambda: runtime

    def _readings(self) -> Iterable[Read]:
        rt = self._runtime()
        if rt is None:
            return
        yield from _socket_readings(rt)
        yield from _writer_readings(rt)
        yield from _routing_readings(rt)


def _socket_readings(rt: Runtime) -> Iterable[Read]:
    """This instance's sockets and their subscriptions."""
    hub = rt.hub
    yield Read("duochat_chat_connections", "Open STOMP sockets", lambda: len(rt.sessions))
    yield Read(
        "duochat_chat_subscriptions",
        "Live room subscriptions of this instance's sockets",
        lambda: sum(len(room.subs) for room in hub.rooms.values()),
    )


def _writer_readings(rt: Runtime) -> Iterable[Read]:
    """What the owner's writer stored, fenced and holds, and what the hub handed on."""
    hub, writer = rt.hub, rt.writer
    yield Read(
        "duochat_chat_messages_stored",
        "Messages this instance stored as the rooms' owner (every type)",
        lambda: writer.stored,
        kind="counter",
    )
    yield Read(
        "duochat_chat_messages_delivered",
        "Stored messages handed to this instance's subscriptions (one per subscription)",
        lambda: hub.delivered,
        kind="counter",
    )
    yield Read(
        "duochat_chat_write_batches",
        "Batches the writer stored",
        lambda: writer.batches,
        kind="counter",
    )
    yield Read(
        "duochat_chat_writer_fenced",
        "Batches refused by the database because another owner wrote the room first",
        lambda: writer.fenced,
        kind="counter",
    )
    yield Read(
        "duochat_chat_writer_queue",
        "Messages waiting for the writer",
        writer.queued,
    )
    yield Read(
        "duochat_chat_owned_rooms",
        "Rooms the writer holds in memory",
        lambda: len(writer.rooms),
    )


def _routing_readings(rt: Runtime) -> Iterable[Read]:
    """The live set, the forwards to owners and what waits to go out to Redis."""
    ring, router = rt.ring, rt.router
    yield Read(
        "duochat_chat_ownership_changes",
        "Times the set of live instances changed, and with it the owners of rooms",
        lambda: ring.moves,
        kind="counter",
    )
    yield Read(
        "duochat_chat_live_instances",
        "Live chat instances this one sees",
        lambda: len(ring.live),
    )
    yield Read(
        "duochat_chat_forwarded",
        "Messages forwarded to the owner of their room on another instance",
        lambda: router.forwarded,
        kind="counter",
    )
    yield Read(
        "duochat_chat_forwards_unanswered",
        "Forwarded messages the owner has not answered yet",
        lambda: len(router.pending),
    )
    yield Read(
        "duochat_chat_redis_backlog",
        "Appends to Redis (forwards, deliveries, events) waiting to go out",
        rt.outbound.pending,
    )
