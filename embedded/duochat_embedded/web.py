"""Serves the built single-page app, with a fallback to index.html for client-side routes."""

from __future__ import annotations

from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

NOT_BUILT = """<!doctype html><title>duochat</title>
<h1>duochat is running</h1>
<p>The web app is not built yet: run <code>make web</code> (or <code>make run</code>, which builds
it), then reload. The API answers under /auth, /boards, /chat, /notify and /ws-stomp.</p>"""


class SpaFiles(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        try:
            return await super().get_response(path, scope)
        except HTTPException as exc:
            if exc.status_code != 404 or "." in path.rsplit("/", 1)[-1]:
                raise
            return await super().get_response("index.html", scope)


def web_app(dist: Path) -> ASGIApp:
    if (dist / "index.html").is_file():
        return SpaFiles(directory=dist, html=True)

    async def not_built(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await HTMLResponse(NOT_BUILT)(scope, receive, send)

    return not_built
