"""A real network cut between one browser and the server: a loopback TCP proxy the test drives.

Playwright's ``set_offline`` does not close sockets that are already open, and routing the
WebSocket through Playwright is not the network. This proxy is: the browser loads the app from
``proxy.url``, so its page, REST calls, SSE stream and STOMP WebSocket all cross it, and

- ``cut()`` closes every connection and refuses new ones (an outage) until ``restore()``;
- ``hold_replies_after(text)`` lets the browser's WebSocket frame that contains ``text`` reach
  the server, and from then on passes nothing back on that connection, so the server stores a
  message whose receipt never arrives (then the test cuts);
- ``sent`` holds every text frame the browser sent on a WebSocket, unmasked, so a test can read
  the STOMP frames that went out (a resend's ``clientMessageId``, say).

It runs in threads, not asyncio: the browser tests are synchronous.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading


class NetCut:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.sent: list[str] = []
        self.accepted = 0  # connections let through, over the proxy's life
        self._lock = threading.Lock()
        self._down = False
        self._ws_down = False
        self._closed = False
        self._conns: set[socket.socket] = set()
        self._links: set[_Link] = set()
        self._hold: str | None = None
        self.held = threading.Event()  # set once a hold has started
        threading.Thread(target=self._accept_loop, name="netcut-accept", daemon=True).start()

    # --- what a test does ----------------------------------------------------------------

    def cut(self) -> None:
        """Every open connection ends at once; new ones are refused until restore()."""
        with self._lock:
            self._down = True
            conns, self._conns = self._conns, set()
        for s in conns:
            _abort(s)

    def cut_websockets(self) -> None:
        """Only the STOMP WebSocket goes (the chat service is down, the page still loads): open
        ones end, new ones are refused until restore()."""
        with self._lock:
            self._ws_down = True
            links = [link for link in self._links if link.websocket]
        for link in links:
            link._end()

    def restore(self) -> None:
        with self._lock:
            self._down = False
            self._ws_down = False

    def hold_replies_after(self, text: str) -> None:
        self.held.clear()
        self._hold = text

    def stomp_sends(self, containing: str) -> list[str]:
        """The browser's STOMP SEND frames that contain ``containing``, in order."""
        with self._lock:
            frames = list(self.sent)
        return [f for f in frames if f.lstrip("\r\n").startswith("SEND") and containing in f]

    def close(self) -> None:
        self._closed = True
        self.cut()
        with contextlib.suppress(OSError):
            self._listener.close()

    # --- the proxy -----------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                refuse = self._down
            if refuse:
                _abort(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _abort(client)
                continue
            link = _Link(self, client, upstream)
            with self._lock:
                self._conns |= {client, upstream}
                self._links.add(link)
                self.accepted += 1
            threading.Thread(target=link.up, daemon=True).start()
            threading.Thread(target=link.down, daemon=True).start()


class _Link:
    """One browser connection and its upstream twin."""

    def __init__(self, proxy: NetCut, client: socket.socket, upstream: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self.frozen = threading.Event()  # nothing more goes back to the browser
        self.websocket: bool | None = None  # decided by the request line
        self.buffer = b""

    def up(self) -> None:
        try:
            while data := self.client.recv(65536):
                self._watch(data)
                if self.websocket and self.proxy._ws_down:
                    break  # refused: the chat service is "down"
                self.upstream.sendall(data)
        except OSError:
            pass
        finally:
            self._end()

    def down(self) -> None:
        try:
            while data := self.upstream.recv(65536):
                if self.frozen.is_set():
                    continue  # swallowed: the server's answers never arrive
                self.client.sendall(data)
        except OSError:
            pass
        finally:
            self._end()

    def _end(self) -> None:
        with self.proxy._lock:
            self.proxy._conns -= {self.client, self.upstream}
            self.proxy._links.discard(self)
        for s in (self.client, self.upstream):
            _abort(s)

    def _watch(self, data: bytes) -> None:
        """Reads the browser's WebSocket frames as they pass (a hold starts here)."""
        self.buffer += data
        if self.websocket is None:
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if not sep:
                return
            self.websocket = head.startswith(b"GET /ws-stomp")
            self.buffer = rest
        if not self.websocket:
            self.buffer = b""
            return
        while (parsed := _frame(self.buffer)) is not None:
            opcode, payload, used = parsed
            self.buffer = self.buffer[used:]
            if opcode not in (0, 1):
                continue
            text = payload.decode(errors="replace")
            with self.proxy._lock:
                self.proxy.sent.append(text)
            hold = self.proxy._hold
            if hold is not None and hold in text:
                self.proxy._hold = None
                self.frozen.set()
                self.proxy.held.set()


def _frame(buf: bytes) -> tuple[int, bytes, int] | None:
    """One client-to-server WebSocket frame from the front of ``buf``: (opcode, unmasked
    payload, bytes used), or None while it is incomplete."""
    if len(buf) < 2:
        return None
    opcode = buf[0] & 0x0F
    masked = buf[1] & 0x80
    length = buf[1] & 0x7F
    at = 2
    if length == 126:
        if len(buf) < 4:
            return None
        (length,) = struct.unpack(">H", buf[2:4])
        at = 4
    elif length == 127:
        if len(buf) < 10:
            return None
        (length,) = struct.unpack(">Q", buf[2:10])
        at = 10
    mask = b""
    if masked:
        if len(buf) < at + 4:
            return None
        mask, at = buf[at : at + 4], at + 4
    if len(buf) < at + length:
        return None
    payload = buf[at : at + length]
    if masked:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return opcode, payload, at + length


def _abort(s: socket.socket) -> None:
    """End a connection at once, as a dropped network ends it for the browser. shutdown() wakes
    the thread blocked reading it (close() alone does not, on Linux)."""
    with contextlib.suppress(OSError):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        s.close()
