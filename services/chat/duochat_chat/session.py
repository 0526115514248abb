"""One STOMP client's session: what its frames mean for duochat.

The protocol layer (``duochat_chat.stomp``) turns bytes into events and the socket adapter
(``transport``) moves frames; this module decides who the user is (CONNECT), which rooms they
may read (SUBSCRIBE) and write (SEND), and delivers room messages back as MESSAGE frames.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import time
import uuid
from functools import partial
from typing import TYPE_CHECKING

import jwt
import orjson
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from duochat_chat.drafts import Draft, Stored
from duochat_chat.hub import Subscription
from duochat_chat.limits import TooManySockets
from duochat_chat.messages import (
    ENTER,
    ENTER_KEY,
    QUIT,
    SERVER_KEY,
    TALK,
    TYPING,
    Body,
    encode_body,
    entered_text,
    left_text,
    transient,
)
from duochat_chat.messages import utcnow_ms as now_ms
from duochat_chat.rooms import is_room_id, read_only_reason
from duochat_chat.runtime import Runtime
from duochat_chat.stomp import (
    Connect,
    Disconnect,
    Event,
    Failed,
    Receipt,
    Send,
    State,
    StompConnection,
    Subscribe,
    Unsubscribe,
)
from duochat_common.errors import DomainError
from duochat_common.tokens import AuthUser
from duochat_common.tracing import context_of, current_traceparent

if TYPE_CHECKING:
    from duochat_chat.transport import Outlet

log = logging.getLogger(__name__)
ROOM_PREFIX = "/sub/chat/room/"
SEND_DESTINATION = "/pub/chat/message"
TYPING_DESTINATION = "/pub/chat/typing"
TYPING_EVERY_S = 1.0  # one TYPING per user and room this often; the rest are folded into it
CLIENT_KEY = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# Keys for SENDs that bring none: unique to this process (random) and counted within it.
_KEY_PREFIX = uuid.uuid4().hex[:12] + "-"
_key_numbers = itertools.count(1)


class Refused(Exception):
    """A frame the session answers with ERROR (and then closes); ``reason`` is what
    ``duochat_chat_errors_total`` counts it as."""

    def __init__(self, message: str, *, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason


def room_of(destination: str) -> str:
    room_id = destination[len(ROOM_PREFIX) :] if destination.startswith(ROOM_PREFIX) else ""
    if not is_room_id(room_id):
        raise Refused(f"unknown destination {destination[:100]!r}: use {ROOM_PREFIX}{{roomId}}")
    return room_id


class Session:
    __slots__ = ("conn", "expires_at", "out", "pending", "rt", "subs", "token", "user")

    def __init__(self, rt: Runtime, out: Outlet, conn: StompConnection) -> None:
        self.rt = rt
        self.out = out
        self.conn = conn
        self.user: AuthUser | None = None
        self.token: str | None = None
        self.subs: dict[str, Subscription] = {}
        self.expires_at = 0.0  # wall-clock expiry of the CONNECT token (0 = none)
        self.pending: set[asyncio.Future[Stored | None]] = set()  # SENDs not settled yet

    # -- output --------------------------------------------------------------------------------

    def deliver(self, sub: Subscription, message_id: str, body: Body) -> None:
        self.out.push(
            self.conn.message(sub.sub_id, sub.destination, message_id, body.text, body.size)
        )

    def push(self, text: str) -> None:
        self.out.push(text)

    def fail(self, message: str, receipt: str | None = None, *, reason: str = "invalid") -> None:
        self.rt.metrics.error(reason)
        if not self.conn.closed:
            self.push(self.conn.error(message, receipt=receipt))
        self.out.close_soon(after=self.pending)

    # -- input ---------------------------------------------------------------------------------

    async def handle(self, event: Event) -> None:
        receipt = getattr(event, "receipt", None)
        try:
            if isinstance(event, Send):
                tracer = self.rt.tracer
                if tracer is None:
                    await self.on_send(event)
                else:
                    await self._traced_send(event, tracer)
            elif isinstance(event, Subscribe):
                await self.on_subscribe(event)
            elif isinstance(event, Unsubscribe):
                await self.on_unsubscribe(event)
            elif isinstance(event, Connect):
                await self.on_connect(event)
            elif isinstance(event, Receipt):
                self.push(self.conn.receipt(event.receipt))
            elif isinstance(event, Disconnect):
                if event.receipt:
                    self.push(self.conn.receipt(event.receipt))
                self.conn.state = State.CLOSED
                self.out.close_soon(after=self.pending)
            elif isinstance(event, Failed):
                # The frames before the failing one come first: their receipts, then the ERROR.
                if self.pending:
                    await asyncio.wait(set(self.pending), timeout=5.0)
                self.rt.metrics.error("protocol")
                self.push(event.frame)
                self.out.close_soon()
        except Refused as exc:
            self.fail(str(exc), receipt, reason=exc.reason)
        except DomainError as exc:
            self.fail(exc.message, receipt, reason="denied")
        except Exception:
            log.exception("STOMP frame handling failed")
            self.fail("internal error while handling the frame", receipt, reason="internal")

    async def _traced_send(self, event: Send, tracer: Tracer) -> None:
        """``on_send`` in a span that ends when the message is stored or refused; a client
        that sends a ``traceparent`` header has it continue the client's trace."""
        known = event.destination in (SEND_DESTINATION, TYPING_DESTINATION)
        destination = event.destination if known else "unknown"  # span names stay few
        span = tracer.start_span(
            f"SEND {destination}",
            context=context_of(event.headers.get("traceparent")),
            kind=SpanKind.SERVER,
            attributes={
                "messaging.system": "stomp",
                "messaging.destination.name": destination,
                "enduser.id": str(self.user.id) if self.user else "",
            },
        )
        try:
            with trace.use_span(span, end_on_exit=False):
                future = await self.on_send(event)
        except BaseException as exc:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            span.end()
            raise
        if future is None:
            span.end()
        else:
            future.add_done_callback(partial(_end_span, span))

    async def on_connect(self, event: Connect) -> None:
        if not event.token:
            raise Refused(
                "CONNECT needs a token header (or Authorization: Bearer ...)", reason="denied"
            )
        user = await self.rt.verifier.verify(event.token)
        try:
            await self.rt.user_limits.opened(user.id)
        except TooManySockets as exc:
            raise Refused(str(exc), reason="rate_limited") from None
        self.user = user
        self.token = event.token
        self.expires_at = token_expiry(event.token)
        self.push(self.conn.connected(user.username))

    def _user(self) -> AuthUser:
        assert self.user is not None  # the state machine lets nothing through before CONNECT
        return self.user

    async def on_subscribe(self, event: Subscribe) -> None:
        user = self._user()
        room_id = room_of(event.destination)
        since_header = event.headers.get("since")
        since = None
        if since_header not in (None, ""):
            if not since_header.isascii() or not since_header.isdigit() or len(since_header) > 18:
                raise Refused("since must be a message id (a non-negative integer)")
            since = int(since_header)
        if any(s.room_id == room_id for s in self.subs.values()):
            raise Refused(f"already subscribed to room {room_id}: one subscription per room")
        rt = self.rt
        await rt.membership.room_for(room_id, user, self.token)
        sub = await rt.hub.subscribe(
            self, event.sub_id, room_id, event.destination, since, rt.settings.max_replay
        )
        self.subs[event.sub_id] = sub
        if event.receipt:
            self.push(self.conn.receipt(event.receipt))
        await self._joined(room_id, user)

    async def _joined(self, room_id: str, user: AuthUser) -> None:
        rt = self.rt
        newly_here = await rt.presence.join(room_id, user.id, user.username)
        # Now that this instance is in the room's presence, its owner reads it again and
        # delivers here from its next batch on (the sweep covers any message in between).
        rt.router.watch(room_id)
        if (room_id, user.id) not in rt.membership.entered:
            # The member's first visit ever is posted and kept: the room's history shows it
            # (docs/architecture.md, "Compatibility with the former app").
            draft = Draft(
                room_id,
                ENTER,
                user.id,
                user.username,
                entered_text(user.username),
                key=ENTER_KEY,
                sent_ms=time.time_ns() // 1_000_000,
            )
            try:
                stored = await rt.router.submit(draft)
            except Exception:
                log.warning("ENTER not stored", exc_info=True)
                stored = None
            rt.membership.entered.add((room_id, user.id))
            if stored is not None:
                return
        if newly_here:
            await self._announce(room_id, user, ENTER, entered_text(user.username))

    async def _announce(self, room_id: str, user: AuthUser, kind: str, text: str) -> None:
        """A later arrival or a departure: told to whoever is in the room, not stored."""
        members = await self.rt.presence.members(room_id)
        body = encode_body(
            id=None,
            type=kind,
            room_id=room_id,
            sender=user.username,
            message=text,
            created_at=now_ms(),
            user_count=len(members),
        )
        await self.rt.delivery.transient(room_id, body)

    async def on_unsubscribe(self, event: Unsubscribe) -> None:
        sub = self.subs.pop(event.sub_id, None)
        if sub is not None:
            self.rt.hub.unsubscribe(sub)
            await self._left(sub.room_id)
        if event.receipt:
            self.push(self.conn.receipt(event.receipt))

    async def _left(self, room_id: str) -> None:
        user = self._user()
        if await self.rt.presence.leave(room_id, user.id):
            await self._announce(room_id, user, QUIT, left_text(user.username))

    async def on_send(self, event: Send) -> asyncio.Future[Stored | None] | None:
        """Check a SEND and hand its message to the room's owner; returns its future (None:
        nothing to store)."""
        received = time.time_ns() // 1_000_000
        user = self._user()
        if event.destination == TYPING_DESTINATION:
            await self.on_typing(event, user)
            return None
        if event.destination != SEND_DESTINATION:
            raise Refused(
                f"unknown destination {event.destination[:100]!r}: send to {SEND_DESTINATION}"
                f" or {TYPING_DESTINATION}"
            )
        room_id, kind, text, key = parse_send(event.body, self.rt.settings.max_message_chars)
        rt = self.rt
        info = await rt.membership.room_for(room_id, user, self.token)
        if kind != TALK:
            # Clients may still announce themselves with SEND ENTER/QUIT; the server does that
            # on SUBSCRIBE and on leaving, so these only get their receipt.
            if event.receipt:
                self.push(self.conn.receipt(event.receipt))
            return None
        if not text.strip():
            raise Refused("message is empty")
        if not rt.user_limits.may_send(user.id):
            raise Refused(
                f"too many messages: at most {rt.settings.sends_per_second:g} per second "
                "per user, across all your connections",
                reason="rate_limited",
            )
        if info.read_only:
            raise Refused(read_only_reason(info.status), reason="denied")
        if rt.writer.busy():
            raise Refused("the server is busy; try again in a moment", reason="busy")
        draft = Draft(room_id, TALK, user.id, user.username, text, key=key, sent_ms=received)
        if rt.tracer is not None:
            draft.trace = current_traceparent()
        future = rt.router.submit(draft)
        self.pending.add(future)
        future.add_done_callback(partial(self._stored, event.receipt))
        return future

    async def on_typing(self, event: Send, user: AuthUser) -> None:
        """``{"roomId"}``: the other member sees "typing..."; nothing is stored, and a user's
        signals for a room come at most every TYPING_EVERY_S (the rest change nothing)."""
        try:
            data = json.loads(event.body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise Refused('the body must be JSON: {"roomId"}') from None
        room_id = data.get("roomId") if isinstance(data, dict) else None
        if not isinstance(room_id, str) or not is_room_id(room_id):
            raise Refused("roomId must be a room id (1-64 letters, digits, '_' or '-')")
        rt = self.rt
        info = await rt.membership.room_for(room_id, user, self.token)
        if not info.read_only and rt.typing.due(user.id, room_id, TYPING_EVERY_S):
            body = transient(type=TYPING, roomId=room_id, sender=user.username)
            await rt.delivery.transient(room_id, body)
        if event.receipt:
            self.push(self.conn.receipt(event.receipt))

    def _stored(self, receipt: str | None, future: asyncio.Future[Stored | None]) -> None:
        self.pending.discard(future)
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            self.fail(str(exc), receipt, reason="not_stored")
        elif receipt:
            self.push(self.conn.receipt(receipt))

    async def cleanup(self) -> None:
        """The socket is gone: leave every room."""
        self.out.dead = True
        subs = list(self.subs.values())
        self.subs.clear()
        for sub in subs:
            self.rt.hub.unsubscribe(sub)
        for room_id in {s.room_id for s in subs}:
            try:
                await self._left(room_id)
            except Exception:
                log.warning("presence cleanup failed", exc_info=False)
        if self.user is not None:
            await self.rt.user_limits.closed(self.user.id)


def _end_span(span: trace.Span, future: asyncio.Future[Stored | None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        span.set_status(Status(StatusCode.ERROR, str(future.exception())[:200]))
    span.end()


def token_expiry(token: str) -> float:
    """The ``exp`` of a token the verifier has already accepted (0 if it has none)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
        return float(claims.get("exp") or 0)
    except (jwt.PyJWTError, TypeError, ValueError):
        return 0.0


def parse_send(body: bytes | str, max_chars: int) -> tuple[str, str, str, str]:
    """A SEND body to the room's message as ``(roomId, type, message, key)``; a body that
    breaks a rule is refused with the rule. ``key`` is the ``clientMessageId``, or one the
    server makes."""
    try:
        data = orjson.loads(body)  # the fast path: several times the standard parser's speed
    except orjson.JSONDecodeError:
        # The standard parser reads what orjson refuses but JSON allows (a lone surrogate
        # escape, which the rule below then names) and refuses the rest as before.
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            # RecursionError: JSON nested thousands deep (the frame limit allows 16 KiB of it).
            raise Refused('the body must be JSON: {"type","roomId","message"}') from None
    if not isinstance(data, dict):
        raise Refused('the body must be a JSON object: {"type","roomId","message"}')
    room_id, kind, text = data.get("roomId"), data.get("type", TALK), data.get("message", "")
    if not isinstance(room_id, str) or not is_room_id(room_id):
        raise Refused("roomId must be a room id (1-64 letters, digits, '_' or '-')")
    if kind not in (TALK, ENTER, QUIT):
        raise Refused("type must be TALK, ENTER or QUIT")
    if not isinstance(text, str):
        raise Refused("message must be a string")
    if len(text) > max_chars:
        raise Refused(f"message too long: at most {max_chars} characters")
    try:
        text.encode()
    except UnicodeEncodeError:
        raise Refused("message is not valid Unicode text") from None
    key = data.get("clientMessageId")
    if key is None:
        key = f"{SERVER_KEY}{_KEY_PREFIX}{next(_key_numbers)}"
    elif not isinstance(key, str) or not CLIENT_KEY.fullmatch(key):
        raise Refused("clientMessageId must be 1-64 letters, digits, '.', '_', ':' or '-'")
    return room_id, kind, text, key
