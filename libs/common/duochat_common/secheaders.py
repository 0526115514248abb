"""The browser security headers every response of the web app carries, in one place: the
embedded server, the nginx gateway renderer and (by a test) the web image's nginx config all
send these.

The Content-Security-Policy fits the built app exactly: its script and stylesheet are files of
its own origin (Vite emits no inline script), it talks to its own origin only (fetch, SSE and
the STOMP WebSocket: ``'self'`` covers ``ws:``/``wss:`` to the same host), and the only image it
uses is the empty ``data:`` favicon. Vue sets styles through the CSSOM, which CSP does not govern.
"""

from __future__ import annotations

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    # For browsers that predate frame-ancestors.
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
