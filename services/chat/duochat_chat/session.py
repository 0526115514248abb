"""One STOMP-over-WebSocket client, from the socket to the rooms.

The protocol layer (``duochat_chat.stomp``) turns bytes into events; this module decides what
they mean for duochat: who the user is (CONNECT), which rooms they may read (SUBSCRIBE) and
write (SEND), and it delivers room messages back as MESSAGE frames.

Writes to the socket never block room delivery: a frame is written at once when the socket
can take it, and otherwise queued behind a short-lived drain task. An idle connection has no
task of its own besides the ASGI one; heart-beats and timeouts come from one ticker for all.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

import jwt
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from duochat_chat.hub import Subscription
from duochat_chat.messages import (
    ENTER,
    ENTER_KEY,
    QUIT,
    SERVER_KEY,
    TALK,
    Body,
    encode_body,
    entered_text,
    left_text,
)
from duochat_chat.messages import utcnow_ms as now_ms
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
from duochat_chat.writer import Draft, Stored
from duochat_common.errors import DomainError
from duochat_common.tokens import AuthUser

log = logging.getLogger(__name__)
ROOM_PREFIX = "/sub/chat/room/"
SEND_DESTINATION = "/pub/chat/message"
SUBPROTOCOLS = ("v12.stomp", "v11.stomp", "v10.stomp")
MAX_BACKLOG = 5_000  # frames queued for a client that does not read: then it is cut off
CLIENT_KEY = re.compile(r"[A-Za-z0-9._:-]{1,64}")
Send_ = Callable[[dict[str, Any]], Coroutine[Any, Any, None]]


class Refused(Exception):
    """A frame the session answers with ERROR (and then closes)."""


def room_of(destination: str) -> str:
    room_id = destination[len(ROOM_PREFIX) :] if destination.startswith(ROOM_PREFIX) else ""
    if not room_id or len(room_id) > 64 or "/" in room_id:
        raise Refused(f"unknown destination {destination[:100]!r}: use {ROOM_PREFIX}{{roomId}}")
    return room_id


class Session:
    __slots__ = (
        "_backlog",
        "_send",
        "closing",
        "conn",
        "dead",
        "expires_at",
        "loop",
        "rt",
        "subs",
        "token",
        "user",
    )

    def __init__(self, rt: Runtime, send: Send_, subprotocol: str | None) -> None:
        self.rt = rt
        self._send = send
        self.loop = asyncio.get_running_loop()
        self.conn = StompConnection(rt.limits, now=self.loop.time(), subprotocol=subprotocol)
        self.user: AuthUser | None = None
        self.token: str | None = None
        self.subs: dict[str, Subscription] = {}
        self._backlog: deque[str] | None = None
        self.dead = False
        self.closing = False
        self.expires_at = 0.0  # wall-clock expiry of the CONNECT token (0 = none)

    # -- output --------------------------------------------------------------------------------

    def deliver(self, sub: Subscription, message_id: str, body: Body) -> None:
        self.push(self.conn.message(sub.sub_id, sub.destination, message_id, body.text, body.size))

    def push(self, text: str) -> None:
        """Write a frame now if the socket takes it, else queue it in order."""
        if self.dead:
            return
        self.conn.last_sent = self.loop.time()
        backlog = self._backlog
        if backlog is not None:
            backlog.append(text)
            if len(backlog) > MAX_BACKLOG:
                log.warning("client does not read its frames; closing it")
                self.dead = True
                backlog.clear()
                self.loop.create_task(self._abort())
            return
        coro = self._send({"type": "websocket.send", "text": text})
        try:
            waiting = coro.send(None)
        except StopIteration:
            return  # written: the usual case, with no task and no queue
        except Exception:
            self.dead = True
            return
        # The transport is paused (the client reads slowly): finish this write in a task and
        # queue what follows behind it.
        self._backlog = deque()
        self.loop.create_task(self._drain(coro, waiting))

    async def _drain(self, coro: Coroutine[Any, Any, None], waiting: Any) -> None:
        try:
            while True:
                if waiting is None:
                    await asyncio.sleep(0)
                else:
                    await waiting
                try:
                    waiting = coro.send(None)
                except StopIteration:
                    break
            while self._backlog:
                await self._send({"type": "websocket.send", "text": self._backlog.popleft()})
        except Exception:
            self.dead = True
        finally:
            self._backlog = None

    async def flush(self) -> None:
        """Wait (a bounded while) for queued frames to be written."""
        deadline = self.loop.time() + 5.0
        while self._backlog is not None and not self.dead and self.loop.time() < deadline:  # noqa: ASYNC110 - rare path, no event worth keeping per connection
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        """Close the socket once every queued frame (an ERROR, a RECEIPT) is out."""
        if self.closing:
            return
        self.closing = True
        await self.flush()
        try:
            await self._send({"type": "websocket.close", "code": 1000})
        except Exception:
            self.dead = True

    def close_soon(self) -> None:
        if not self.closing:
            self.loop.create_task(self.close())

    async def _abort(self) -> None:
        try:
            await self._send({"type": "websocket.close", "code": 1008, "reason": "too slow"})
        except Exception:
            return

    def fail(self, message: str, receipt: str | None = None) -> None:
        if not self.conn.closed:
            self.push(self.conn.error(message, receipt=receipt))
        self.close_soon()

    # -- input ---------------------------------------------------------------------------------

    async def handle(self, event: Event) -> None:
        receipt = getattr(event, "receipt", None)
        try:
            if isinstance(event, Send):
                await self.on_send(event)
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
                self.close_soon()
            elif isinstance(event, Failed):
                self.push(event.frame)
                self.close_soon()
        except Refused as exc:
            self.fail(str(exc), receipt)
        except DomainError as exc:
            self.fail(exc.message, receipt)
        except Exception:
            log.exception("STOMP frame handling failed")
            self.fail("internal error while handling the frame", receipt)

    async def on_connect(self, event: Connect) -> None:
        if not event.token:
            raise Refused("CONNECT needs a token header (or Authorization: Bearer ...)")
        self.user = await self.rt.verifier.verify(event.token)
        self.token = event.token
        self.expires_at = token_expiry(event.token)
        self.push(self.conn.connected(self.user.username))

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
        rt = self.rt
        await rt.membership.room_for(room_id, user, self.token)
        sub = await rt.hub.subscribe(self, event.sub_id, room_id, event.destination, since)
        rt.router.watch(room_id)
        self.subs[event.sub_id] = sub
        if event.receipt:
            self.push(self.conn.receipt(event.receipt))
        await self._joined(room_id, user)

    async def _joined(self, room_id: str, user: AuthUser) -> None:
        rt = self.rt
        newly_here = await rt.presence.join(room_id, user.id, user.username)
        if (room_id, user.id) not in rt.membership.entered:
            # The member's first visit ever is posted and kept, as the old app announced it.
            draft = Draft(
                room_id, ENTER, user.id, user.username, entered_text(user.username), key=ENTER_KEY
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

    async def on_send(self, event: Send) -> None:
        user = self._user()
        if event.destination != SEND_DESTINATION:
            raise Refused(
                f"unknown destination {event.destination[:100]!r}: send to {SEND_DESTINATION}"
            )
        try:
            data = json.loads(event.body)
        except (ValueError, UnicodeDecodeError):
            raise Refused('the body must be JSON: {"type","roomId","message"}') from None
        if not isinstance(data, dict):
            raise Refused('the body must be a JSON object: {"type","roomId","message"}')
        room_id, kind, text = data.get("roomId"), data.get("type", TALK), data.get("message", "")
        if not isinstance(room_id, str) or not room_id or len(room_id) > 64:
            raise Refused("roomId must be a room id string")
        if kind not in (TALK, ENTER, QUIT):
            raise Refused("type must be TALK, ENTER or QUIT")
        if not isinstance(text, str):
            raise Refused("message must be a string")
        limit = self.rt.settings.max_message_chars
        if len(text) > limit:
            raise Refused(f"message too long: at most {limit} characters")
        try:
            text.encode()
        except UnicodeEncodeError:
            raise Refused("message is not valid Unicode text") from None
        key = data.get("clientMessageId")
        if key is None:
            key = SERVER_KEY + uuid.uuid4().hex
        elif not isinstance(key, str) or not CLIENT_KEY.fullmatch(key):
            raise Refused("clientMessageId must be 1-64 letters, digits, '.', '_', ':' or '-'")
        rt = self.rt
        info = await rt.membership.room_for(room_id, user, self.token)
        if kind != TALK:
            # The old client announced itself with SEND ENTER/QUIT; the server now does that
            # on SUBSCRIBE and on leaving, so these only get their receipt.
            if event.receipt:
                self.push(self.conn.receipt(event.receipt))
            return
        if not text.strip():
            raise Refused("message is empty")
        if info.read_only:
            raise Refused(f"this room is read-only (the board is {info.status})")
        if rt.writer.busy():
            raise Refused("the server is busy; try again in a moment")
        future = rt.router.submit(Draft(room_id, TALK, user.id, user.username, text, key=key))
        future.add_done_callback(partial(self._stored, event.receipt))

    def _stored(self, receipt: str | None, future: asyncio.Future[Stored | None]) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            self.fail(str(exc), receipt)
        elif receipt:
            self.push(self.conn.receipt(receipt))

    async def cleanup(self) -> None:
        """The socket is gone: leave every room."""
        self.dead = True
        subs = list(self.subs.values())
        self.subs.clear()
        for sub in subs:
            self.rt.hub.unsubscribe(sub)
        for room_id in {s.room_id for s in subs}:
            try:
                await self._left(room_id)
            except Exception:
                log.warning("presence cleanup failed", exc_info=False)


def token_expiry(token: str) -> float:
    """The ``exp`` of a token the verifier has already accepted (0 if it has none)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
        return float(claims.get("exp") or 0)
    except (jwt.PyJWTError, TypeError, ValueError):
        return 0.0


def _forget_handshake(send: Send_) -> None:
    """Drop the handshake request and response (with their headers) that uvicorn's
    websockets-sansio protocol keeps for the life of the connection, after the accept, when it
    no longer reads them: about 1.5 KiB of each idle socket's 25 KiB budget. ``send`` is that
    protocol's bound method when chat is served by it (see ``duochat_common.serving``)."""
    protocol = getattr(send, "__self__", None)
    if isinstance(protocol, WebSocketsSansIOProtocol) and protocol.handshake_complete:
        protocol.request = protocol.response = None  # type: ignore[assignment]


class StompEndpoint:
    """The ASGI app at ``/ws-stomp``."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Send_) -> None:
        rt: Runtime = scope["app"].state.chat
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        offered = scope.get("subprotocols") or []
        chosen = next((p for p in SUBPROTOCOLS if p in offered), None)
        await send({"type": "websocket.accept", "subprotocol": chosen})
        # The handshake headers are read; an idle socket need not keep a copy of them.
        scope["headers"] = []
        _forget_handshake(send)
        session = Session(rt, send, chosen)
        rt.sessions.add(session)
        loop = session.loop
        try:
            while not session.conn.closed:
                message = await receive()
                if message["type"] != "websocket.receive":
                    session.dead = True
                    break
                data = message.get("text")
                if data is None:
                    data = message.get("bytes") or b""
                for event in session.conn.feed(data, loop.time()):
                    await session.handle(event)
                    if session.closing or session.conn.closed:
                        break
                if session.closing:
                    break
            if not session.dead:
                await session.close()
                # Wait for the client's close (or the transport's end) so nothing is cut short.
                while (await receive())["type"] == "websocket.receive":
                    pass
        finally:
            rt.sessions.discard(session)
            await session.cleanup()


async def run_ticker(rt: Runtime, interval: float = 1.0) -> None:
    """Heart-beats out, dead peers and slow CONNECTs closed, for every session at once."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(interval)
        now = loop.time()
        wall = time.time()
        for session in list(rt.sessions):
            try:
                if session.expires_at and wall > session.expires_at and not session.closing:
                    # The web client reconnects with a fresh token; a stolen one stops working.
                    session.fail("token expired: connect again with a fresh token")
                    continue
                out = session.conn.tick(now)
                if out is None:
                    continue
                session.push(out)
                if session.conn.closed:
                    session.close_soon()
            except Exception:
                log.exception("ticker failed for a session")
