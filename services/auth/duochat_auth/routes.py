"""auth's HTTP routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from duochat_auth import cookies, service
from duochat_auth.config import Settings
from duochat_auth.keys import KeyRing
from duochat_auth.metrics import AuthMetrics
from duochat_auth.passwords import Passwords
from duochat_auth.ratelimit import LoginLimiter, WindowLimiter
from duochat_auth.schemas import (
    Credentials,
    Jwks,
    MeOut,
    NewCredentials,
    RefreshRequest,
    TokenPair,
)
from duochat_common.clientaddr import client_address
from duochat_common.deps import CurrentUser, SessionDep, from_state
from duochat_common.errors import Unauthorized, error_responses
from duochat_common.wire import UserOut

router = APIRouter(prefix="/auth", tags=["auth"])


def _address(request: Request) -> str:
    """The caller's address; X-Forwarded-For counts only from a trusted proxy."""
    return client_address(
        request.client.host if request.client else None,
        request.headers.get("x-forwarded-for"),
        request.app.state.settings.trusted_networks(),
    )


KeysDep = Annotated[KeyRing, Depends(from_state("keys"))]
SettingsDep = Annotated[Settings, Depends(from_state("settings"))]
PasswordsDep = Annotated[Passwords, Depends(from_state("passwords"))]


@router.post(
    "/register",
    status_code=201,
    response_model=UserOut,
    responses=error_responses(400, 409, 422, 429, 503),
)
async def register(
    body: NewCredentials,
    request: Request,
    session: SessionDep,
    passwords: PasswordsDep,
    signups: Annotated[WindowLimiter, Depends(from_state("signups"))],
) -> UserOut:
    user = await service.register(
        session=session,
        passwords=passwords,
        signups=signups,
        address=_address(request),
        username=body.username,
        password=body.password,
    )
    return UserOut(id=user.id, username=user.username)


@router.post(
    "/login",
    response_model=TokenPair,
    response_model_exclude_none=True,
    responses=error_responses(400, 401, 422, 429, 503),
)
async def login(
    body: Credentials,
    request: Request,
    response: Response,
    session: SessionDep,
    keys: KeysDep,
    settings: SettingsDep,
    limiter: Annotated[LoginLimiter, Depends(from_state("limiter"))],
    passwords: PasswordsDep,
    metrics: Annotated[AuthMetrics, Depends(from_state("auth_metrics"))],
) -> TokenPair:
    with metrics.login():
        pair = await service.login(
            session=session,
            keys=keys,
            settings=settings,
            limiter=limiter,
            passwords=passwords,
            username=body.username,
            password=body.password,
            address=_address(request),
        )
    return cookies.deliver(
        pair,
        response,
        cookie=cookies.wants_cookie(request),
        max_age=settings.refresh_token_ttl_seconds,
    )


@router.post(
    "/refresh",
    response_model=TokenPair,
    response_model_exclude_none=True,
    responses=error_responses(400, 401, 422),
)
async def refresh(
    request: Request,
    response: Response,
    session: SessionDep,
    keys: KeysDep,
    settings: SettingsDep,
    body: RefreshRequest | None = None,
) -> TokenPair:
    in_body = body.refresh_token if body else None
    token = in_body or cookies.from_cookie(request)
    if token is None:
        raise Unauthorized("send the refresh token", code="invalid_refresh_token")
    pair = await service.refresh(session=session, keys=keys, settings=settings, token=token)
    # Whatever brought the old token takes the new one back.
    return cookies.deliver(
        pair, response, cookie=in_body is None, max_age=settings.refresh_token_ttl_seconds
    )


@router.post(
    "/logout", status_code=204, response_class=Response, responses=error_responses(400, 422)
)
async def logout(
    request: Request, session: SessionDep, body: RefreshRequest | None = None
) -> Response:
    token = (body.refresh_token if body else None) or cookies.from_cookie(request)
    if token is not None:
        await service.logout(session=session, token=token)
    response = Response(status_code=204)
    cookies.forget(response)
    return response


@router.get(
    "/me", response_model=MeOut, response_model_exclude_none=True, responses=error_responses(401)
)
async def me(user: CurrentUser) -> MeOut:
    return MeOut(id=user.id, username=user.username, role=user.role)


@router.get("/.well-known/jwks.json", response_model=Jwks)
async def jwks(keys: KeysDep, response: Response) -> Jwks:
    response.headers["Cache-Control"] = "public, max-age=300"
    return Jwks.model_validate(keys.jwks())
