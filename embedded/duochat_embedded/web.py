"""Serves the built single-page app, with a fallback to index.html for client-side routes."""

from __future__ import annotations

from pathlib import Path

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from duochat_common.errors import error_body
from duochat_common.secheaders import SECURITY_HEADERS

NOT_BUILT = """<!doctype html><title>duochat</title>
<h1>duochat is running</h1>
<p>The web app is not built yet: run <code>make web</code> (or <code>make run</code>, which builds
it), then reload. The API answers under /auth, /boards, /chat, /notify and /ws-stomp.</p>"""


class SpaFiles(StaticFiles):
    """The built app; a path without a file extension is a client-side route (index.html).

    Errors are answered here (404 for a missing file, 405 for a POST): nothing around this app
    would turn a raised HTTPException into a response, so it would have been a 500."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        try:
            try:
                return await super().get_response(path, scope)
            except HTTPException as exc:
                if exc.status_code != 404 or "." in path.rsplit("/", 1)[-1]:
                    raise
                return await super().get_response("index.html", scope)
        except HTTPException as exc:
            code = "not_found" if exc.status_code == 404 else "http_error"
            return JSONResponse(
                error_body(code, str(exc.detail)), exc.status_code, headers=exc.headers
            )
        except (ValueError, OSError):  # a NUL byte or a name the file system refuses
            return JSONResponse(error_body("not_found", "Not Found"), 404)


class SecurityHeaders:
    """Adds the browser security headers to every HTTP response that lacks them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, with_headers)


def web_app(dist: Path) -> ASGIApp:
    if (dist / "index.html").is_file():
        return SpaFiles(directory=dist, html=True)

    async def not_built(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await HTMLResponse(NOT_BUILT)(scope, receive, send)

    return not_built
