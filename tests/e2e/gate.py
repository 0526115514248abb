"""A switch on a page's STOMP WebSocket, to break the connection on purpose.

Playwright routes the page's socket through itself: frames pass unchanged until a test cuts the
connection, refuses reconnects, or swallows the page's SEND frames.
"""

from __future__ import annotations

import re

from playwright.sync_api import Page, WebSocketRoute


class StompGate:
    def __init__(self, page: Page) -> None:
        self.refuse = False  # new connections are closed at once
        self.drop_sends = False  # SEND frames from the page never reach the server
        self.connections = 0
        self.sends: list[str] = []  # the page's SEND frames, dropped or not
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
            server.send(message)

        ws.on_message(from_page)
        # Server-to-page frames are forwarded as they are (no handler set for that side).
        self._open.append((ws, server))

    def cut(self) -> None:
        """Closes every open socket, as a dropped network would."""
        for ws, server in self._open:
            server.close(code=1001, reason="cut by the test")
            ws.close(code=1001, reason="cut by the test")
        self._open.clear()
