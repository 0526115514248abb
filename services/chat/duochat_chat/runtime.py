"""Everything one chat instance runs, built by the app's lifespan and shared by routes and
WebSocket sessions."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx
import redis.asyncio as aioredis

from duochat_chat.config import Settings
from duochat_chat.fanout import Entry, FanoutReader, Publisher
from duochat_chat.hub import Hub
from duochat_chat.membership import Membership
from duochat_chat.messages import Body
from duochat_chat.mysql_batch import writer_database
from duochat_chat.presence import Presence
from duochat_chat.stomp import Limits
from duochat_chat.store import History, MessageWriter
from duochat_common.db import Database
from duochat_common.events import Consumer
from duochat_common.events.schemas import BOARDS_STREAM, CHAT_STREAM
from duochat_common.redis_store import create_redis, is_memory
from duochat_common.tokens import TokenVerifier, http_jwks_fetcher

if TYPE_CHECKING:
    from duochat_chat.session import Session

log = logging.getLogger(__name__)
FANOUT_STREAM = "chat.fanout"


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
    publisher: Publisher
    writer: MessageWriter
    membership: Membership
    limits: Limits
    consumer: Consumer
    reader: FanoutReader
    sessions: set[Session] = field(default_factory=set)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def publish_transient(self, room_id: str, body: Body) -> None:
        """An ENTER/QUIT that is announced, not stored: through the fan-out stream only, which
        every instance (this one too) reads, so local subscribers get it once, and at the same
        place among the stored messages as everyone else."""
        self.publisher.enqueue([Entry(room_id, 0, body.text)])

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.http.aclose()
        await self.redis.aclose()
        if self.writer.db is not self.db:
            await self.writer.db.dispose()
        await self.db.dispose()


def build_runtime(settings: Settings, verifier: TokenVerifier | None = None) -> Runtime:
    instance = (
        settings.instance_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    )
    db = Database(settings.database_url, pool_size=10, max_overflow=20)
    redis = create_redis(settings.redis_url, max_connections=settings.redis_max_connections)
    verifier = verifier or TokenVerifier(
        http_jwks_fetcher(settings.auth_jwks_url),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        cache_seconds=settings.jwks_cache_seconds,
    )
    http = httpx.AsyncClient(timeout=settings.boards_timeout_s)
    presence = Presence(redis, key=settings.key, instance=instance, ttl_s=settings.presence_ttl_s)
    history = History(db)
    hub = Hub(history, on_presence_change=presence.invalidate)
    publisher = Publisher(
        redis,
        fanout_stream=settings.key(FANOUT_STREAM),
        events_stream=settings.key(CHAT_STREAM),
        maxlen=settings.fanout_maxlen,
    )
    writer_db = writer_database(db)
    writer = MessageWriter(
        writer_db,
        presence=presence,
        hub=hub,
        publisher=publisher,
        batch=settings.write_batch,
        queue_max=settings.write_queue_max,
    )
    membership = Membership(db, http=http, boards_url=settings.boards_url, writer=writer)
    consumer = Consumer(
        redis,
        stream=settings.key(BOARDS_STREAM),
        group="chat",
        consumer=instance,
        handler=membership.handle_event,
    )
    reader = FanoutReader(
        redis,
        stream=settings.key(FANOUT_STREAM),
        sink=hub,
        count=None if is_memory(settings.redis_url) else 1000,
    )
    return Runtime(
        settings=settings,
        instance=instance,
        db=db,
        redis=redis,
        verifier=verifier,
        http=http,
        presence=presence,
        hub=hub,
        history=history,
        publisher=publisher,
        writer=writer,
        membership=membership,
        limits=settings.stomp_limits(),
        consumer=consumer,
        reader=reader,
    )


def start(runtime: Runtime) -> None:
    """Start the background loops of one instance."""
    from duochat_chat.session import run_ticker

    loop = asyncio.get_running_loop()
    jobs = [
        runtime.writer.run(),
        runtime.publisher.run(),
        runtime.reader.run(),
        runtime.consumer.run(),
        runtime.presence.run(),
        runtime.hub.run_sweeper(runtime.settings.sweep_interval_s, asyncio.sleep),
        run_ticker(runtime),
    ]
    runtime.tasks = [loop.create_task(job) for job in jobs]
