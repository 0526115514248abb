"""The server side of one STOMP connection, as a state machine with no I/O.

``feed()`` takes what the client sent and returns events for the application (Connect,
Subscribe, Send, ...). Everything the protocol itself decides (version negotiation, heart-beat
negotiation, required headers, duplicate subscription ids, the subscription and send-rate
limits, the frame size limit) is settled here; the application decides who the user is, which
destinations exist and who may use them. Frames to send back are built by the methods
(``connected()``, ``receipt()``, ``message()``, ``error()``), and ``tick()`` says when a
heart-beat is due or the peer has gone silent.

After an ERROR the connection is closed: ``feed()`` returns nothing more, and the caller
closes the socket once the ERROR frame is out (STOMP requires both).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from duochat_chat.stomp.frames import VERSIONS, Frame, FrameParser, ProtocolError, encode

# A header value that holds one of these needs STOMP 1.2 escaping.
_NEEDS_ESCAPE = re.compile(r"[\\\n:\r]")


@dataclass(frozen=True, slots=True)
class Limits:
    max_frame_bytes: int = 16 * 1024
    max_subscriptions: int = 200
    sends_per_second: float = 20.0
    send_burst: int = 40
    connect_timeout_s: float = 10.0
    # Heart-beats this server offers (cx) and asks for (cy), in milliseconds.
    heartbeat_send_ms: int = 10_000
    heartbeat_receive_ms: int = 10_000
    # How many missed receive intervals before the peer counts as gone.
    heartbeat_grace: float = 2.5


class State(enum.Enum):
    AWAITING_CONNECT = "awaiting_connect"
    CONNECTING = "connecting"  # CONNECT received, the application is checking the credentials
    CONNECTED = "connected"
    CLOSED = "closed"


@dataclass(slots=True)
class Connect:
    headers: dict[str, str]
    token: str | None
    version: str


@dataclass(slots=True)
class Subscribe:
    sub_id: str
    destination: str
    headers: dict[str, str]
    receipt: str | None


@dataclass(slots=True)
class Unsubscribe:
    sub_id: str
    destination: str
    receipt: str | None


@dataclass(slots=True)
class Send:
    destination: str
    body: bytes
    headers: dict[str, str]
    receipt: str | None


@dataclass(slots=True)
class Receipt:
    """A frame the protocol layer accepts as is (ACK, NACK) that asked for a receipt."""

    receipt: str


@dataclass(slots=True)
class Disconnect:
    receipt: str | None


@dataclass(slots=True)
class Failed:
    """The client broke the protocol or a limit; ``frame`` is the ERROR to send before closing."""

    message: str
    frame: str


Event = Connect | Subscribe | Unsubscribe | Send | Receipt | Disconnect | Failed


def _token_from(headers: dict[str, str]) -> str | None:
    token = headers.get("token") or headers.get("passcode")
    if token:
        return token.strip()
    auth = headers.get("Authorization") or headers.get("authorization") or ""
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def _parse_heartbeat(value: str | None) -> tuple[int, int]:
    if value is None or value == "":
        return (0, 0)
    parts = value.split(",")
    if len(parts) != 2 or not all(p.strip().isdigit() and p.strip().isascii() for p in parts):
        raise ProtocolError("heart-beat header must be two non-negative integers: cx,cy")
    cx, cy = (int(p) for p in parts)
    if cx > 86_400_000 or cy > 86_400_000:
        raise ProtocolError("heart-beat interval too large")
    return (cx, cy)


def negotiate_version(accept: str | None, subprotocol: str | None = None) -> str | None:
    """The highest version both sides speak; a STOMP subprotocol caps it."""
    offered = {"1.0"} if not accept else {v.strip() for v in accept.split(",")}
    if subprotocol and subprotocol.startswith("v1") and subprotocol.endswith(".stomp"):
        cap = f"1.{subprotocol[2]}"
        offered = {v for v in offered if v <= cap} or offered
    for version in VERSIONS:
        if version in offered:
            return version
    return None


class StompConnection:
    """One client connection's protocol state."""

    __slots__ = (
        "_tokens",
        "_tokens_at",
        "expect_every",
        "last_received",
        "last_sent",
        "limits",
        "opened_at",
        "parser",
        "send_every",
        "server",
        "state",
        "subprotocol",
        "subscriptions",
        "version",
    )

    def __init__(
        self,
        limits: Limits,
        *,
        now: float,
        server: str = "duochat-chat/1.0",
        subprotocol: str | None = None,
    ) -> None:
        self.limits = limits
        self.server = server
        self.subprotocol = subprotocol
        self.state = State.AWAITING_CONNECT
        self.version = "1.2"
        self.parser = FrameParser(max_frame_bytes=limits.max_frame_bytes)
        self.subscriptions: dict[str, str] = {}  # id -> destination
        self.opened_at = now
        self.last_received = now
        self.last_sent = now
        self.send_every = 0.0  # seconds between our heart-beats, 0 = none
        self.expect_every = 0.0  # seconds between the peer's heart-beats, 0 = none
        self._tokens = float(limits.send_burst)
        self._tokens_at = now

    @property
    def closed(self) -> bool:
        return self.state is State.CLOSED

    # -- input -------------------------------------------------------------------------------

    def feed(self, data: str | bytes, now: float) -> list[Event]:
        """Events for what the client sent; a protocol error ends the list with ``Failed``."""
        if self.state is State.CLOSED:
            return []
        self.last_received = now
        raw = data.encode() if isinstance(data, str) else data
        events: list[Event] = []
        error: ProtocolError | None = None
        try:
            frames = self.parser.feed(raw)
        except ProtocolError as exc:
            frames, error = exc.frames, exc
        try:
            for frame in frames:
                event = self._on_frame(frame, now)
                if event is not None:
                    events.append(event)
                if self.state is State.CLOSED:
                    return events
        except ProtocolError as exc:
            error = exc
        if error is not None:
            events.append(self._fail(str(error), receipt=None))
        return events

    def _fail(self, message: str, *, receipt: str | None, detail: str = "") -> Failed:
        return Failed(message, self.error(message, receipt=receipt, detail=detail))

    def _on_frame(self, frame: Frame, now: float) -> Event | None:
        receipt = frame.get("receipt")
        command = frame.command
        if self.state is State.AWAITING_CONNECT:
            if command not in ("CONNECT", "STOMP"):
                return self._fail(f"expected CONNECT, got {command}", receipt=receipt)
            return self._on_connect(frame)
        # In CONNECTING, frames pipelined behind the CONNECT are parsed as if connected: the
        # application handles events in order and drops the rest if the CONNECT fails.
        if command in ("CONNECT", "STOMP"):
            return self._fail("already connected", receipt=receipt)
        if command == "SEND":
            destination = frame.get("destination")
            if not destination:
                return self._fail("SEND needs a destination header", receipt=receipt)
            if not self._take_send_token(now):
                return self._fail(
                    f"too many messages: at most {self.limits.sends_per_second:g} per second",
                    receipt=receipt,
                )
            return Send(destination, frame.body, dict(reversed(frame.headers)), receipt)
        if command == "SUBSCRIBE":
            destination = frame.get("destination")
            sub_id = frame.get("id")
            if sub_id is None and self.version == "1.0":
                sub_id = destination
            if not destination or not sub_id:
                return self._fail("SUBSCRIBE needs destination and id headers", receipt=receipt)
            if sub_id in self.subscriptions:
                return self._fail(f"subscription id {sub_id!r} is already in use", receipt=receipt)
            if len(self.subscriptions) >= self.limits.max_subscriptions:
                return self._fail(
                    f"too many subscriptions: at most {self.limits.max_subscriptions} "
                    "per connection",
                    receipt=receipt,
                )
            self.subscriptions[sub_id] = destination
            return Subscribe(sub_id, destination, dict(reversed(frame.headers)), receipt)
        if command == "UNSUBSCRIBE":
            sub_id = frame.get("id")
            if sub_id is None and self.version == "1.0":
                sub_id = frame.get("destination")
            if not sub_id:
                return self._fail("UNSUBSCRIBE needs an id header", receipt=receipt)
            destination = self.subscriptions.pop(sub_id, "")
            return Unsubscribe(sub_id, destination, receipt)
        if command in ("ACK", "NACK"):
            # Subscriptions are ack:auto; an ACK changes nothing, but it may ask for a receipt.
            return Receipt(receipt) if receipt else None
        if command in ("BEGIN", "COMMIT", "ABORT"):
            return self._fail("transactions are not supported", receipt=receipt)
        if command == "DISCONNECT":
            return Disconnect(receipt)
        return self._fail(f"unexpected command {command}", receipt=receipt)  # pragma: no cover

    def _on_connect(self, frame: Frame) -> Event:
        headers = dict(reversed(frame.headers))
        version = negotiate_version(headers.get("accept-version"), self.subprotocol)
        if version is None:
            failed = Failed(
                "supported protocol versions are 1.2, 1.1, 1.0",
                self._error_frame(
                    "supported protocol versions are 1.2, 1.1, 1.0",
                    extra=[("version", "1.2,1.1,1.0")],
                ),
            )
            self.state = State.CLOSED
            return failed
        cx, cy = _parse_heartbeat(headers.get("heart-beat"))
        self.version = version
        self.parser.version = version
        sx, sy = self.limits.heartbeat_send_ms, self.limits.heartbeat_receive_ms
        self.send_every = max(sx, cy) / 1000 if sx and cy else 0.0
        self.expect_every = max(cx, sy) / 1000 if cx and sy else 0.0
        self.state = State.CONNECTING
        return Connect(headers, _token_from(headers), version)

    def _take_send_token(self, now: float) -> bool:
        elapsed = max(0.0, now - self._tokens_at)
        self._tokens_at = now
        self._tokens = min(
            float(self.limits.send_burst), self._tokens + elapsed * self.limits.sends_per_second
        )
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    # -- output ------------------------------------------------------------------------------

    def connected(self, user_name: str) -> str:
        """Accept the CONNECT (the application checked the credentials)."""
        self.state = State.CONNECTED
        sx = self.limits.heartbeat_send_ms if self.send_every else 0
        sy = self.limits.heartbeat_receive_ms if self.expect_every else 0
        headers = [
            ("version", self.version),
            ("heart-beat", f"{sx},{sy}"),
            ("server", self.server),
            ("user-name", user_name),
        ]
        return encode(Frame("CONNECTED", headers), self.version).decode()

    def receipt(self, receipt_id: str) -> str:
        if not _NEEDS_ESCAPE.search(receipt_id):
            return f"RECEIPT\nreceipt-id:{receipt_id}\n\n\x00"
        return encode(Frame("RECEIPT", [("receipt-id", receipt_id)]), self.version).decode()

    def message(
        self, sub_id: str, destination: str, message_id: str, body: str, body_bytes: int
    ) -> str:
        """A MESSAGE frame (``body_bytes`` is the UTF-8 length of ``body``).

        This is the hot path, so it skips escaping where nothing needs it.
        """
        if (
            _NEEDS_ESCAPE.search(sub_id)
            or _NEEDS_ESCAPE.search(destination)
            or _NEEDS_ESCAPE.search(message_id)
        ):
            headers = [
                ("destination", destination),
                ("content-type", "application/json"),
                ("subscription", sub_id),
                ("message-id", message_id),
            ]
            return encode(Frame("MESSAGE", headers, body.encode()), self.version).decode()
        return (
            f"MESSAGE\ndestination:{destination}\ncontent-type:application/json\n"
            f"subscription:{sub_id}\nmessage-id:{message_id}\n"
            f"content-length:{body_bytes}\n\n{body}\x00"
        )

    def _error_frame(
        self,
        message: str,
        *,
        receipt: str | None = None,
        detail: str = "",
        extra: list[tuple[str, str]] | None = None,
    ) -> str:
        headers = [("message", message.replace("\n", " ")[:500])]
        if receipt is not None:
            headers.append(("receipt-id", receipt))
        headers.append(("content-type", "text/plain"))
        headers.extend(extra or [])
        frame = Frame("ERROR", headers, (detail or message).encode())
        return encode(frame, self.version).decode()

    def error(self, message: str, *, receipt: str | None = None, detail: str = "") -> str:
        """An ERROR frame; the connection is closed from here on."""
        self.state = State.CLOSED
        return self._error_frame(message, receipt=receipt, detail=detail)

    def sent(self, now: float) -> None:
        """Note that something went out (it counts as a heart-beat)."""
        self.last_sent = now

    # -- time --------------------------------------------------------------------------------

    def tick(self, now: float) -> str | None:
        """What to send now, if anything: a heart-beat EOL, or an ERROR when the peer is gone.

        An ERROR leaves the connection closed; the caller sends it and closes the socket.
        """
        if self.state is State.CLOSED:
            return None
        if self.state is not State.CONNECTED:
            if now - self.opened_at > self.limits.connect_timeout_s:
                return self.error(
                    f"no successful CONNECT within {self.limits.connect_timeout_s:g} seconds"
                )
            return None
        if self.expect_every and now - self.last_received > self.expect_every * (
            self.limits.heartbeat_grace
        ):
            return self.error("heart-beat missed: the connection looks dead")
        if self.send_every and now - self.last_sent >= self.send_every * 0.9:
            self.last_sent = now
            return "\n"
        return None
