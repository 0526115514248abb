"""A switch on a page's STOMP WebSocket, to break the connection on purpose.

Playwright routes the page's socket through itself: frames pass unchanged until a test cuts the
connection, refuses reconnects, or swallows the page's SEND frames.
"""

from __future__ import annotations

import json
import re

from playwright.sync_api import Page, WebSocketRoute

TOO_LONG = "x" * 1001  # over the server's limit, whatever the app allows


class StompGate:
    def __init__(self, page: Page) -> None:
        self.refuse = False  # new connections are closed at once
        self.drop_sends = False  # SEND frames from the page never reach the server
        self.connections = 0
        self.sends: list[str] = []  # the page's SEND frames, dropped or not
        # Texts whose next SEND reaches the server spoiled (too long), so that the server
        # refuses that message with an ERROR, as it would a message it cannot take.
        self.spoil: set[str] = set()
        self._open: list[tuple[WebSocketRoute, WebSocketRoute]] = []
        page.route_web_socket(re.compile(r".*/ws-stomp$"), self._handle)

    def _handle(self, ws: WebSocketRoute) -> None:
        if self.refuse:
            ws.close(code=1001, reason="refused by the test")
            return
        self.connections += 1
        server = ws.connect_to_server()

        def from_page(message: str | bytes) -> None:
            text = message if isinstance(message, str) else message.decode(errors="replace")
            if text.lstrip("\r\n").startswith("SEND"):
                self.sends.append(text)
                if self.drop_sends:
                    return
                message = self._spoiled(text) or message
            server.send(message)

        ws.on_message(from_page)
        # Server-to-page frames are forwarded as they are (no handler set for that side).
        self._open.append((ws, server))

    def _spoiled(self, frame: str) -> str | None:
        head, _, body = frame.partition("\n\n")
        try:
            data = json.loads(body.rstrip("\x00"))
        except ValueError:
            return None
        if not isinstance(data, dict) or data.get("message") not in self.spoil:
            return None
        self.spoil.discard(data["message"])
        body = json.dumps({**data, "message": TOO_LONG})
        lines = [
            f"content-length:{len(body.encode())}" if line.startswith("content-length:") else line
            for line in head.split("\n")
        ]
        return "\n".join(lines) + "\n\n" + body + "\x00"

    def cut(self) -> None:
        """Closes every open socket, as a dropped network would."""
        for ws, server in self._open:
            server.close(code=1001, reason="cut by the test")
            ws.close(code=1001, reason="cut by the test")
        self._open.clear()
