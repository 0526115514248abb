"""Everything one chat instance runs, built by the app's lifespan and shared by routes and
WebSocket sessions.

Who does what (each its own module):
- ``ring``: the live instances, and which one owns each room;
- ``forwarding``: drafts to their room's owner, outcomes back to the sending socket;
- ``writer``: the owner's batches (ids in memory, one transaction per batch);
- ``delivery``: stored messages to local subscribers and to the instances that have some;
- ``hub``: this instance's subscriptions, delivered in id order with no gap and no repeat;
- ``outbox``: chat's events, from the database to the events stream;
- ``outbound``: every append to Redis, pipelined;
- ``membership`` and ``presence``: who may use a room, and who is in it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import redis.asyncio as aioredis
from opentelemetry.trace import Tracer, TracerProvider

from duochat_chat.config import Settings
from duochat_chat.decisions import BoardDecisions
from duochat_chat.delivery import Delivery
from duochat_chat.forwarding import Router
from duochat_chat.history import History
from duochat_chat.hub import Hub
from duochat_chat.limits import Throttle, UserLimits
from duochat_chat.membership import Membership
from duochat_chat.metrics import ChatMetrics
from duochat_chat.mysql_batch import writer_database
from duochat_chat.outbound import Outbound
from duochat_chat.outbox import OutboxRelay
from duochat_chat.presence import Presence
from duochat_chat.ring import Ring
from duochat_chat.stomp import Limits
from duochat_chat.writer import MessageWriter
from duochat_common.db import Database
from duochat_common.events import Consumer
from duochat_common.events.metrics import BusMetrics
from duochat_common.events.schemas import BOARDS_STREAM, CHAT_STREAM
from duochat_common.resources import open_redis
from duochat_common.tokens import TokenVerifier, verifier_for
from duochat_common.tracing import instrument, tracer_of

if TYPE_CHECKING:
    from duochat_chat.session import Session

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    instance: str
    db: Database
    redis: aioredis.Redis
    verifier: TokenVerifier
    http: httpx.AsyncClient
    presence: Presence
    hub: Hub
    history: History
    ring: Ring
    outbound: Outbound
    router: Router
    writer: MessageWriter
    delivery: Delivery
    relay: OutboxRelay
    membership: Membership
    limits: Limits
    user_limits: UserLimits
    typing: Throttle
    consumer: Consumer
    metrics: ChatMetrics
    tracer: Tracer | None = None  # None: tracing is off
    owns_db: bool = True  # False: the app was given its database, whose owner disposes of it
    sessions: set[Session] = field(default_factory=set)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    draining: bool = False

    async def drain(self, grace_s: float = 10.0) -> None:
        """Before the sockets close (SIGTERM): hand this instance's rooms to their new owners,
        let the writer finish what it holds and the receipts go out, and flush what is bound
        for Redis. New SENDs meanwhile go to the new owners."""
        if self.draining:
            return
        self.draining = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        await self.ring.leave()
        # Others see this instance gone on their next beat; until then they may still forward
        # here, and the writer passes such drafts on.
        await asyncio.sleep(self.ring.interval_s * 2)
        await self.writer.idle(max(0.1, deadline - loop.time()))
        while self.router.pending and loop.time() < deadline:  # noqa: ASYNC110 - shutdown only
            await asyncio.sleep(0.05)
        await self.outbound.flushed(max(0.1, deadline - loop.time()))
        for session in list(self.sessions):
            await session.out.flush()

    async def stop(self) -> None:
        await self.drain(grace_s=5.0)
        for task in self.tasks:
            task.cancel()
        # Bounded: a loop whose cancellation was swallowed inside a Redis call (see
        # ``cancel_requested``) stops at its next turn, not necessarily before this returns.
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=3.0)
        await self.http.aclose()
        await self.redis.aclose()
        if self.writer.db is not self.db:
            await self.writer.db.dispose()
        if self.owns_db:
            await self.db.dispose()


def build_runtime(
    settings: Settings,
    verifier: TokenVerifier | None = None,
    *,
    database: Database | None = None,
    metrics: ChatMetrics | None = None,
    bus_metrics: BusMetrics | None = None,
    tracer_provider: TracerProvider | None = None,
) -> Runtime:
    """One chat instance, named by ``settings.instance_name()`` (set ``instance_id`` to keep a
    name). ``database`` is the readers' database when given (its owner disposes of it); the
    writer always has an engine of its own (``mysql_batch.writer_database``)."""
    metrics = metrics or ChatMetrics()
    tracer = tracer_of(tracer_provider, "chat")
    instance = settings.instance_name()
    db = database or Database(settings.database_url, pool_size=10, max_overflow=20)
    redis = open_redis(settings)
    presence = Presence(redis, key=settings.key, instance=instance, ttl_s=settings.presence_ttl_s)
    parts = _messaging(settings, db, redis, instance, presence, metrics)
    http = instrument(httpx.AsyncClient(timeout=settings.boards_timeout_s), tracer_provider)
    membership = Membership(db, http=http, boards_url=settings.boards_url)
    consumer = Consumer(
        redis,
        stream=settings.key(BOARDS_STREAM),
        group="chat",
        consumer=instance,
        handler=BoardDecisions(membership, router=parts["router"]).handle_event,
        metrics=bus_metrics,
        tracer=tracer,
    )
    runtime = Runtime(
        settings=settings,
        instance=instance,
        db=db,
        owns_db=database is None,
        redis=redis,
        verifier=verifier or verifier_for(settings),
        http=http,
        presence=presence,
        membership=membership,
        limits=settings.stomp_limits(),
        user_limits=UserLimits(
            redis,
            key=settings.key,
            instance=instance,
            is_live=parts["ring"].is_live,
            max_sockets=settings.max_sockets_per_user,
            sends_per_second=settings.sends_per_second,
            send_burst=settings.send_burst,
        ),
        consumer=consumer,
        typing=Throttle(),
        metrics=metrics,
        tracer=tracer,
        **parts,
    )
    metrics.watch(runtime)
    return runtime


def _messaging(
    settings: Settings,
    db: Database,
    redis: aioredis.Redis,
    instance: str,
    presence: Presence,
    metrics: ChatMetrics,
) -> dict[str, Any]:
    """The path of a message: owners, forwarding, the writer, delivery and the events'
    outbox, wired to each other (the ``Runtime`` fields of the same names)."""
    ring, outbound, router = _routing(settings, redis, instance, presence)
    key = settings.key
    relay = OutboxRelay(
        db,
        outbound,  # in its lane for events (see ``outbound``)
        stream=key(CHAT_STREAM),
        stale_s=settings.outbox_stale_s,
        sweep_s=settings.outbox_sweep_s,
    )
    history = History(db)
    hub = Hub(history, on_presence_change=presence.invalidate)
    delivery = Delivery(
        instance=instance,
        hub=hub,
        router=router,
        outbound=outbound,
        relay=relay,
        presence=presence,
        deliver_key=lambda node: key(f"chat:deliver:{node}"),
        metrics=metrics,
    )
    router.writer = MessageWriter(
        writer_database(db),
        reads=db,
        presence=presence,
        ring=ring,
        deliver=delivery.stored,
        reroute=router.reroute,
        batch=settings.write_batch,
        queue_max=settings.write_queue_max,
        relayed=relay,
        metrics=metrics,
    )
    return {
        "ring": ring,
        "outbound": outbound,
        "router": router,
        "relay": relay,
        "history": history,
        "hub": hub,
        "delivery": delivery,
        "writer": router.writer,
    }


def _routing(
    settings: Settings, redis: aioredis.Redis, instance: str, presence: Presence
) -> tuple[Ring, Outbound, Router]:
    """Which instance owns each room, and the router that gets drafts to it."""
    key = settings.key
    ring = Ring(
        redis,
        key=key("chat:instances"),
        instance=instance,
        interval_s=settings.ring_interval_s,
        ttl_s=settings.ring_ttl_s,
    )
    ring.nodes_of = presence.nodes_of
    outbound = Outbound(redis)
    router = Router(
        instance=instance,
        ring=ring,
        redis=redis,
        outbound=outbound,
        presence=presence,
        inbox_key=lambda node: key(f"chat:inbox:{node}"),
        resend_s=settings.forward_resend_s,
    )
    return ring, outbound, router


async def start(runtime: Runtime, *more: Coroutine[Any, Any, None]) -> None:
    """Join the live instances, then start the background loops of this one (and ``more``:
    the sockets' ticker, which lives with the socket adapter)."""
    try:
        await runtime.ring.beat()
    except Exception:
        log.warning("could not join the instance set yet (redis unavailable)")
    jobs: list[Coroutine[Any, Any, None]] = [
        runtime.ring.run(),
        runtime.writer.run(),
        runtime.outbound.run(),
        runtime.router.run_inbox(),
        runtime.router.run_resends(),
        runtime.delivery.run_reader(),
        runtime.relay.run(),
        runtime.consumer.run(),
        runtime.presence.run(),
        runtime.hub.run_sweeper(runtime.settings.sweep_interval_s, asyncio.sleep),
    ]
    loop = asyncio.get_running_loop()
    runtime.tasks = [loop.create_task(job) for job in (*jobs, *more)]
