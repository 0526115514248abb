"""STOMP 1.0/1.1/1.2 frames: an incremental parser and an encoder.

A frame is ``COMMAND EOL *(header EOL) EOL body NUL``, where EOL is ``\\n`` or ``\\r\\n``. The
body runs to ``content-length`` bytes when that header is present, else to the first NUL.
Header escaping depends on the negotiated version (none in 1.0, ``\\n \\c \\\\`` in 1.1, and
``\\r`` too in 1.2) and never applies to CONNECT/CONNECTED frames. EOLs between frames are
heart-beats.

Everything here is pure: no I/O, no clock. Any input either yields frames or raises
``ProtocolError``, and the parser never holds more than ``max_frame_bytes`` of a frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CLIENT_COMMANDS = frozenset(
    {
        "CONNECT",
        "STOMP",
        "SEND",
        "SUBSCRIBE",
        "UNSUBSCRIBE",
        "ACK",
        "NACK",
        "BEGIN",
        "COMMIT",
        "ABORT",
        "DISCONNECT",
    }
)
SERVER_COMMANDS = frozenset({"CONNECTED", "MESSAGE", "RECEIPT", "ERROR"})
UNESCAPED_COMMANDS = frozenset({"CONNECT", "STOMP", "CONNECTED"})
VERSIONS = ("1.2", "1.1", "1.0")

_UNESCAPE = {ord("n"): "\n", ord("c"): ":", ord("\\"): "\\", ord("r"): "\r"}


class ProtocolError(Exception):
    """The peer broke the protocol; the message is safe to show it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.frames: list[Frame] = []  # complete frames that came before the error


@dataclass(slots=True)
class Frame:
    command: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of a header: STOMP says a repeated header's first value counts."""
        for key, value in self.headers:
            if key == name:
                return value
        return default


def unescape(value: str, version: str) -> str:
    if version == "1.0" or "\\" not in value:
        return value
    out: list[str] = []
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        if i + 1 >= n:
            raise ProtocolError("header ends inside an escape sequence")
        code = ord(value[i + 1])
        if code not in _UNESCAPE or (code == ord("r") and version == "1.1"):
            raise ProtocolError(f"undefined escape sequence \\{value[i + 1]} in a header")
        out.append(_UNESCAPE[code])
        i += 2
    return "".join(out)


def escape(value: str, version: str) -> str:
    if version == "1.0":
        if "\n" in value or "\r" in value or "\x00" in value:
            raise ValueError("STOMP 1.0 cannot carry this header value")
        return value
    if not any(c in value for c in "\\\n:\r"):
        return value
    value = value.replace("\\", "\\\\").replace("\n", "\\n").replace(":", "\\c")
    if version == "1.2":
        return value.replace("\r", "\\r")
    if "\r" in value:
        raise ValueError("STOMP 1.1 cannot carry a carriage return in a header")
    return value


def encode(frame: Frame, version: str = "1.2", *, content_length: bool = True) -> bytes:
    """The bytes of a frame, with ``content-length`` added unless told otherwise."""
    lines = [frame.command]
    raw = frame.command in UNESCAPED_COMMANDS
    for key, value in frame.headers:
        if raw:
            lines.append(f"{key}:{value}")
        else:
            lines.append(f"{escape(key, version)}:{escape(value, version)}")
    if content_length and frame.body and frame.get("content-length") is None:
        lines.append(f"content-length:{len(frame.body)}")
    head = "\n".join(lines).encode() + b"\n\n"
    return head + frame.body + b"\x00"


class FrameParser:
    """Turns a byte stream (WebSocket messages, in any split) into frames."""

    __slots__ = ("_buf", "commands", "heartbeats", "max_frame_bytes", "max_headers", "version")

    def __init__(
        self,
        *,
        max_frame_bytes: int = 64 * 1024,
        max_headers: int = 32,
        commands: frozenset[str] = CLIENT_COMMANDS,
    ) -> None:
        self.max_frame_bytes = max_frame_bytes
        self.max_headers = max_headers
        self.commands = commands
        self.version = "1.2"
        self._buf = bytearray()
        self.heartbeats = 0  # EOLs seen between frames

    def feed(self, data: bytes) -> list[Frame]:
        """Every frame completed by ``data``; the rest stays buffered."""
        self._buf += data
        frames: list[Frame] = []
        try:
            while True:
                frame = self._next()
                if frame is None:
                    break
                frames.append(frame)
            if len(self._buf) > self.max_frame_bytes:
                raise ProtocolError(f"frame larger than {self.max_frame_bytes} bytes")
        except ProtocolError as exc:
            exc.frames = frames  # the good frames before the bad one, in order
            raise
        return frames

    def _skip_heartbeats(self) -> None:
        buf = self._buf
        i = 0
        n = len(buf)
        while i < n:
            if buf[i] == 0x0A:
                i += 1
                self.heartbeats += 1
            elif buf[i] == 0x0D and i + 1 < n and buf[i + 1] == 0x0A:
                i += 2
                self.heartbeats += 1
            else:
                break
        if i:
            del buf[:i]

    def _next(self) -> Frame | None:
        self._skip_heartbeats()
        if not self._buf:
            return None
        split = self._head_end()
        if split is None:
            return None  # wait for more (feed() bounds the buffer)
        head_end, body_start = split
        command, headers = self._head(head_end)
        body = self._body(body_start, _content_length(headers))
        if body is None:
            return None
        return Frame(command, headers, body)

    def _head_end(self) -> tuple[int, int] | None:
        """Where the header section ends (an empty line) and the body starts; None while
        the buffer holds no end of headers yet."""
        buf = self._buf
        end = buf.find(b"\n\n")
        end_crlf = buf.find(b"\n\r\n")
        if end_crlf != -1 and (end == -1 or end_crlf < end):
            head_end, body_start = end_crlf, end_crlf + 3
        elif end != -1:
            head_end, body_start = end, end + 2
        else:
            if b"\x00" in buf:
                raise ProtocolError("frame ends before its headers do")
            return None
        if head_end + 1 > self.max_frame_bytes:
            raise ProtocolError(f"frame larger than {self.max_frame_bytes} bytes")
        return head_end, body_start

    def _head(self, head_end: int) -> tuple[str, list[tuple[str, str]]]:
        """The command and the headers, in order, of the buffered frame."""
        try:
            head = bytes(self._buf[:head_end]).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError("frame headers are not valid UTF-8") from exc
        lines = head.split("\n")
        command = lines[0].removesuffix("\r")
        if command not in self.commands:
            shown = "".join(c if c.isprintable() and c != "\\" else "?" for c in command[:32])
            raise ProtocolError(f"unknown command '{shown}'")
        if len(lines) - 1 > self.max_headers:
            raise ProtocolError(f"more than {self.max_headers} headers")
        raw = command in UNESCAPED_COMMANDS
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            line = line.removesuffix("\r")
            key, sep, value = line.partition(":")
            if not sep:
                raise ProtocolError("malformed header line (no colon)")
            if "\x00" in line:
                raise ProtocolError("NUL inside a header")
            if not raw:
                key = unescape(key, self.version)
                value = unescape(value, self.version)
            headers.append((key, value))
        return command, headers

    def _body(self, body_start: int, length: int | None) -> bytes | None:
        """The body (``length`` bytes, else up to the NUL), taken off the buffer with its
        frame; None while it has not all arrived."""
        buf = self._buf
        if length is None:
            nul = buf.find(b"\x00", body_start)
            if nul == -1:
                return None
            body = bytes(buf[body_start:nul])
            del buf[: nul + 1]
            return body
        if body_start + length + 1 > self.max_frame_bytes:
            raise ProtocolError(f"frame larger than {self.max_frame_bytes} bytes")
        if len(buf) < body_start + length + 1:
            return None
        if buf[body_start + length] != 0:
            raise ProtocolError("frame body is longer than its content-length")
        body = bytes(buf[body_start : body_start + length])
        del buf[: body_start + length + 1]
        return body


def _content_length(headers: list[tuple[str, str]]) -> int | None:
    """The first ``content-length`` header's value, if any; a malformed one is an error."""
    for key, value in headers:
        if key == "content-length":
            if not value.isascii() or not value.strip().isdigit():
                raise ProtocolError("content-length is not a non-negative integer")
            return int(value)
    return None
