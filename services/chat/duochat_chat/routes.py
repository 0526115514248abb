"""chat's REST routes (thin: parse, call one service function, shape the reply)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from duochat_chat import service
from duochat_chat.runtime import Runtime
from duochat_chat.schemas import HistoryPage, MessageOut, PresenceOut, ReadMarkIn
from duochat_common.deps import CurrentUser
from duochat_common.errors import error_responses
from duochat_common.tokens import bearer_token

router = APIRouter(prefix="/chat", tags=["chat"])
# Room ids are boards' UUIDs (tests use short names): nothing else may reach a query or a URL
# (a NUL in a path is a 422, not a database error).
RoomId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="a room id")]


def _rt(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.chat
    return runtime


def _token(request: Request) -> str | None:
    return bearer_token(request.headers.get("authorization"))


@router.get("/rooms/unread", responses=error_responses(401, 503))
async def unread(request: Request, user: CurrentUser) -> dict[str, int]:
    return await service.unread_counts(rt=_rt(request), user=user)


@router.get("/rooms/latest", response_model_exclude_none=True, responses=error_responses(401, 503))
async def latest(request: Request, user: CurrentUser) -> dict[str, MessageOut]:
    rows: dict[str, Any] = await service.latest(rt=_rt(request), user=user)
    return {k: MessageOut.model_validate(v) for k, v in rows.items()}


@router.get(
    "/rooms/{room_id}/messages",
    response_model_by_alias=True,
    response_model_exclude_none=True,
    responses=error_responses(401, 403, 422, 503),
)
async def messages(
    request: Request,
    user: CurrentUser,
    room_id: RoomId,
    before: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    after: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> HistoryPage:
    page = await service.history(
        rt=_rt(request),
        room_id=room_id,
        user=user,
        token=_token(request),
        before=before,
        after=after,
        limit=limit,
    )
    return HistoryPage.model_validate(page)


@router.delete(
    "/rooms/{room_id}/messages/{message_id}",
    status_code=204,
    responses=error_responses(401, 403, 404, 409, 422, 503),
)
async def unsend(
    request: Request,
    user: CurrentUser,
    room_id: RoomId,
    message_id: Annotated[int, Path(ge=1, le=2**62)],
) -> Response:
    await service.unsend(
        rt=_rt(request), room_id=room_id, message_id=message_id, user=user, token=_token(request)
    )
    return Response(status_code=204)


@router.post(
    "/rooms/{room_id}/read", status_code=204, responses=error_responses(401, 403, 422, 503)
)
async def read(request: Request, user: CurrentUser, room_id: RoomId, body: ReadMarkIn) -> Response:
    await service.mark_read(
        rt=_rt(request),
        room_id=room_id,
        user=user,
        token=_token(request),
        last_read_id=body.last_read_id,
    )
    return Response(status_code=204)


@router.get("/rooms/{room_id}/presence", responses=error_responses(401, 403, 422, 503))
async def presence(request: Request, user: CurrentUser, room_id: RoomId) -> PresenceOut:
    out = await service.presence(rt=_rt(request), room_id=room_id, user=user, token=_token(request))
    return PresenceOut.model_validate(out)
