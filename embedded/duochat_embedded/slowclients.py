"""Read timeouts for the embedded server: uvicorn's HTTP protocol with a deadline on headers and
on the request body.

uvicorn times out only an idle keep-alive connection. A client that opens a connection and sends
nothing, or one header line every few seconds, or a body a byte at a time, holds its socket (and
a file descriptor) for as long as it likes. Here a request's headers must
arrive within ``header_timeout`` of its first byte (or of the connection, for the first request),
and its body within ``body_timeout`` of the headers; otherwise the connection is closed. A
WebSocket upgrade leaves this protocol once its headers are read, and a streamed response (SSE)
starts after the request is complete, so neither is cut.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)

HEADER_TIMEOUT_S = 10.0
BODY_TIMEOUT_S = 30.0


class TimedHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` that closes a connection whose request arrives too slowly."""

    header_timeout = HEADER_TIMEOUT_S
    body_timeout = BODY_TIMEOUT_S

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_deadline: asyncio.TimerHandle | None = None

    def _arm(self, seconds: float, what: str) -> None:
        self._disarm()
        self._read_deadline = self.loop.call_later(seconds, self._too_slow, what)

    def _disarm(self) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
            self._read_deadline = None

    def _too_slow(self, what: str) -> None:
        self._read_deadline = None
        if not self.transport.is_closing():
            log.info("closing a connection from %s: its %s took too long", self.client, what)
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout, "request headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm(self.header_timeout, "request headers")

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self.parser.should_upgrade():
            self._disarm()  # a WebSocket: its own protocol takes the connection over
        else:
            self._arm(self.body_timeout, "request body")

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()


def timed_protocol(*, header_timeout: float, body_timeout: float) -> type[TimedHttpToolsProtocol]:
    """The protocol class with these deadlines (uvicorn takes a class, not an instance)."""
    return type(
        "TimedHttpToolsProtocol",
        (TimedHttpToolsProtocol,),
        {"header_timeout": header_timeout, "body_timeout": body_timeout},
    )
