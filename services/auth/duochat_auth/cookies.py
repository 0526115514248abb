"""The refresh token as an HttpOnly cookie, for browsers: page script never holds it.

A browser client asks for it with ``X-Duochat-Token-Transport: cookie`` at sign-in. Its refresh
token then lives only in a cookie that script cannot read (``HttpOnly``), that travels only over
https or to this machine (``Secure``), only to ``/auth`` (``Path``) and never on a request another
site starts (``SameSite=Strict``, which also makes cross-site refresh and logout requests useless).
A refresh token that came in the cookie is answered in the cookie only, so script that runs in
the page (an XSS) cannot trade the cookie for a token it could read. Clients that send the
refresh token in the body (the API as documented, stomp tools, tests) get it back in the body.
"""

from __future__ import annotations

from fastapi import Request, Response

from duochat_auth.schemas import TokenPair

COOKIE = "duochat_refresh"
COOKIE_PATH = "/auth"
TRANSPORT_HEADER = "x-duochat-token-transport"


def wants_cookie(request: Request) -> bool:
    return request.headers.get(TRANSPORT_HEADER, "").strip().lower() == "cookie"


def from_cookie(request: Request) -> str | None:
    value = request.cookies.get(COOKIE)
    return value if value and len(value) <= 512 else None


def deliver(pair: TokenPair, response: Response, *, cookie: bool, max_age: int) -> TokenPair:
    """The pair as the client gets it: with the refresh token in the body, or in the cookie."""
    if not cookie:
        return pair
    response.set_cookie(
        COOKIE,
        pair.refresh_token or "",
        max_age=max_age,
        path=COOKIE_PATH,
        secure=True,
        httponly=True,
        samesite="strict",
    )
    return pair.model_copy(update={"refresh_token": None})


def forget(response: Response) -> None:
    response.delete_cookie(COOKIE, path=COOKIE_PATH, secure=True, httponly=True, samesite="strict")
