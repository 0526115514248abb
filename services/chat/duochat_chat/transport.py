"""The STOMP socket adapter: the WebSocket endpoint, each socket's output (coalesced writes,
back-pressure, closing), and one ticker for every socket's heart-beats and deadlines.

What the frames mean is the session's business (``session``); this module moves them.
Writes to the socket never block room delivery: a frame is written at once when the socket can
take it, and otherwise queued behind a short-lived drain task. An idle connection has no task of
its own besides the ASGI one; heart-beats and timeouts come from one ticker for all.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from duochat_chat.runtime import Runtime
from duochat_chat.session import Session
from duochat_chat.stomp import StompConnection

log = logging.getLogger(__name__)
SUBPROTOCOLS = ("v12.stomp", "v11.stomp", "v10.stomp")
MAX_BACKLOG = 5_000  # frames queued for a client that does not read: then it is cut off
Send_ = Callable[[dict[str, Any]], Coroutine[Any, Any, None]]


class Outlet:
    """One socket's output."""

    __slots__ = ("_backlog", "_out", "_send", "closing", "conn", "dead", "loop")

    def __init__(self, send: Send_, conn: StompConnection) -> None:
        self._send = send
        self.conn = conn  # its last_sent times the heart-beats
        self.loop = asyncio.get_running_loop()
        self._backlog: deque[str] | None = None
        self._out: list[str] | None = None  # frames of this turn of the loop, not yet written
        self.dead = False
        self.closing = False

    def push(self, text: str) -> None:
        """Send a frame: the frames pushed to one socket in the same turn of the event loop
        (a batch's MESSAGEs, a RECEIPT) leave together, as one WebSocket message. STOMP frames
        end with a NUL, so a client's parser reads them one by one either way."""
        if self.dead:
            return
        out = self._out
        if out is None:
            self._out = [text]
            self.loop.call_soon(self._write_out)
        else:
            out.append(text)

    def _write_out(self) -> None:
        out, self._out = self._out, None
        if out and not self.dead:
            self._write(out[0] if len(out) == 1 else "".join(out))

    def _write(self, text: str) -> None:
        """Write now if the socket takes it, else queue it in order."""
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
        self._write_out()
        deadline = self.loop.time() + 5.0
        while self._backlog is not None and not self.dead and self.loop.time() < deadline:  # noqa: ASYNC110 - rare path, no event worth keeping per connection
            await asyncio.sleep(0.01)

    async def close(self, after: set[asyncio.Future[Any]] | None = None) -> None:
        """Close the socket once every queued frame (an ERROR, a RECEIPT) is out, and (a
        bounded while) once ``after`` have settled."""
        if self.closing:
            return
        self.closing = True
        if after:
            await asyncio.wait(set(after), timeout=5.0)
        await self.flush()
        try:
            await self._send({"type": "websocket.close", "code": 1000})
        except Exception:
            self.dead = True

    def close_soon(self, after: set[asyncio.Future[Any]] | None = None) -> None:
        """Close once the frames queued so far are out, and (a bounded while) once ``after``
        have settled: the receipts of SENDs handled before a failing frame still go out."""
        if not self.closing:
            self.loop.create_task(self.close(after))

    async def _abort(self) -> None:
        try:
            await self._send({"type": "websocket.close", "code": 1008, "reason": "too slow"})
        except Exception:
            return


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
        loop = asyncio.get_running_loop()
        conn = StompConnection(rt.limits, now=loop.time(), subprotocol=chosen)
        session = Session(rt, Outlet(send, conn), conn)
        rt.sessions.add(session)
        try:
            while not session.conn.closed:
                message = await receive()
                if message["type"] != "websocket.receive":
                    session.out.dead = True
                    break
                data = message.get("text")
                if data is None:
                    data = message.get("bytes") or b""
                # In order, up to and including a frame that fails: its ERROR is the last
                # event of the list, and must go out even when good frames came before it.
                for event in session.conn.feed(data, loop.time()):
                    await session.handle(event)
                    if session.out.closing:
                        break
                if session.out.closing:
                    break
            if not session.out.dead:
                await session.out.close(after=session.pending)
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
                if session.expires_at and wall > session.expires_at and not session.out.closing:
                    # The web client reconnects with a fresh token; a stolen one stops working.
                    session.fail(
                        "token expired: connect again with a fresh token", reason="token_expired"
                    )
                    continue
                out = session.conn.tick(now)
                if out is None:
                    continue
                session.out.push(out)
                if session.conn.closed:
                    session.out.close_soon()
            except Exception:
                log.exception("ticker failed for a session")
