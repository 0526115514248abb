"""Opening an SSE stream: redeem the ticket, take a slot, subscribe, and stream until the
client leaves, the fan-out closes the tab, or the server shuts down."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import Receive, Scope, Send

from duochat_common.errors import TooManyRequests, Unauthorized
from duochat_notify.fanout import Fanout, Tab
from duochat_notify.slots import StreamSlots
from duochat_notify.tickets import Tickets

log = logging.getLogger(__name__)

# The reconnection delay EventSource should use after the server closes a stream.
RECONNECT_MS = 2000


class _Stream(EventSourceResponse):
    """An EventSourceResponse that always releases its tab and slot, even when the
    body never started (the client left before the first byte)."""

    def __init__(self, *args: object, on_close: Callable[[], Awaitable[None]], **kw: object):
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.move_on_after(5, shield=True):
                await self._on_close()


async def _close_on(shutdown: anyio.Event, sub: Tab, expires_at: float | None) -> None:
    with anyio.move_on_after(math.inf if expires_at is None else expires_at - time.time()):
        await shutdown.wait()
    sub.close()


async def _events(
    sub: Tab, shutdown: anyio.Event, expires_at: float | None
) -> AsyncIterator[ServerSentEvent]:
    # sse-starlette sets ``shutdown`` when the server begins to stop; closing the tab
    # ends this generator, so the body ends properly and the client reconnects elsewhere. The
    # stream also ends when the owner's access token expires (as a STOMP session does): signed
    # out or not, whoever holds the page must show a fresh token to get a new ticket.
    watcher = asyncio.create_task(_close_on(shutdown, sub, expires_at))
    try:
        # A first comment flushes the headers through proxies; it also tells a client that its
        # tab is in place.
        yield ServerSentEvent(comment="connected", retry=RECONNECT_MS)
        while (entry := await sub.next()) is not None:
            yield ServerSentEvent(id=entry.id, event=entry.event, data=entry.data)
    finally:
        watcher.cancel()


class Streams:
    """Opens the SSE streams of one instance."""

    def __init__(
        self,
        *,
        tickets: Tickets,
        slots: StreamSlots,
        fanout: Fanout,
        keepalive_seconds: float,
        shutdown_grace_seconds: float = 2.0,
    ) -> None:
        self.tickets = tickets
        self.slots = slots
        self.fanout = fanout
        self.keepalive = keepalive_seconds
        self.grace = shutdown_grace_seconds

    async def open(self, *, ticket: str | None, last_event_id: str | None) -> EventSourceResponse:
        """The ticket holder's stream, replaying after ``last_event_id`` when given."""
        user = await self.tickets.redeem(ticket or "")
        if user is None:
            raise Unauthorized(
                "the stream needs a fresh ticket from POST /notify/ticket", code="invalid_ticket"
            )
        slot = await self.slots.acquire(user.id)
        if slot is None:
            raise TooManyRequests(
                "too many notification streams open; close one", code="too_many_streams"
            )
        try:
            sub = await self.fanout.subscribe(user.id, last_event_id)
        except BaseException:
            await self.slots.release(slot)
            raise

        async def on_close() -> None:
            self.fanout.unsubscribe(sub)
            await self.slots.release(slot)

        shutdown = anyio.Event()
        return _Stream(
            _events(sub, shutdown, user.expires_at),
            on_close=on_close,
            headers={"Cache-Control": "no-cache"},
            ping=self.keepalive,
            shutdown_event=shutdown,
            shutdown_grace_period=self.grace,
        )
