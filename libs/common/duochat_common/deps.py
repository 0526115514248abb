"""FastAPI dependencies every service uses, as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from duochat_common.errors import Forbidden, Unauthorized
from duochat_common.tokens import AuthUser, TokenVerifier

_bearer = HTTPBearer(auto_error=False, description="An access token from POST /auth/login")


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.db.session() as session:
        yield session


async def get_current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> AuthUser:
    if credentials is None:
        raise Unauthorized("sign in first: send Authorization: Bearer <access token>")
    verifier: TokenVerifier = request.app.state.verifier
    return await verifier.verify(credentials.credentials)


def from_state(name: str) -> Callable[[Request], Any]:
    """A dependency that gives ``app.state.<name>``, what the app's lifespan put there: one
    for every service instead of a three-line getter per object per service."""

    def dependency(request: Request) -> Any:
        return getattr(request.app.state, name)

    dependency.__name__ = f"state_{name}"
    return dependency


SessionDep = Annotated[AsyncSession, Depends(get_session)]
CurrentUser = Annotated[AuthUser, Depends(get_current_user)]


async def get_operator(user: CurrentUser) -> AuthUser:
    """The caller, if their token carries the operator role; else 403 ``not_operator``."""
    if not user.is_operator:
        raise Forbidden("only an operator can do this", code="not_operator")
    return user


OperatorUser = Annotated[AuthUser, Depends(get_operator)]
