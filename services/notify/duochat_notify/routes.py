"""notify's HTTP routes under ``/notify``."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from sse_starlette import EventSourceResponse

from duochat_common.deps import CurrentUser, SessionDep
from duochat_common.errors import error_responses
from duochat_notify import service
from duochat_notify.schemas import (
    AlarmPage,
    ReadNotice,
    ReadRequest,
    ReadResult,
    RoomAlarmPage,
    TicketOut,
)

router = APIRouter(prefix="/notify", tags=["notify"])
EVENT_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")


@router.post(
    "/ticket",
    response_model=TicketOut,
    response_model_by_alias=True,
    responses=error_responses(401, 429, 503),
)
async def create_ticket(request: Request, user: CurrentUser) -> TicketOut:
    """A single-use ticket that opens the caller's stream."""
    ticket = await request.app.state.tickets.issue(user)
    return TicketOut(ticket=ticket, expires_in=request.app.state.settings.ticket_ttl_seconds)


@router.get(
    "/stream",
    response_class=EventSourceResponse,
    responses={
        200: {"content": {"text/event-stream": {}}},
        **error_responses(401, 422, 429, 503),
    },
)
async def stream(
    request: Request,
    ticket: Annotated[str | None, Query(max_length=256)] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=64)] = None,
) -> EventSourceResponse:
    """The ticket holder's notifications as Server-Sent Events."""
    # Only an id of the shape this service sends is passed on; anything else (a client's bug)
    # counts as "from now", like an id that is not in the stream.
    if last_event_id is not None and not EVENT_ID.fullmatch(last_event_id):
        last_event_id = None
    response: EventSourceResponse = await request.app.state.streams.open(
        ticket=ticket, last_event_id=last_event_id
    )
    return response


@router.get(
    "/alarms",
    response_model=AlarmPage,
    response_model_by_alias=True,
    responses=error_responses(400, 401, 422, 503),
)
async def list_alarms(
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=32)] = None,
) -> AlarmPage:
    """The caller's alarms, newest first, with the unread count."""
    return await service.list_alarms(session=session, user_id=user.id, limit=limit, cursor=cursor)


@router.get(
    "/alarms/by-room",
    response_model=RoomAlarmPage,
    response_model_by_alias=True,
    responses=error_responses(400, 401, 422, 503),
)
async def list_alarms_by_room(
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=32)] = None,
) -> RoomAlarmPage:
    """The caller's alarms as the bell shows them: one entry per room for its messages, with
    their unread count, newest first."""
    return await service.list_alarms_by_room(
        session=session, user_id=user.id, limit=limit, cursor=cursor
    )


@router.post(
    "/alarms/read",
    response_model=ReadResult,
    response_model_by_alias=True,
    responses=error_responses(400, 401, 422, 503),
)
async def read_alarms(
    request: Request, body: ReadRequest, user: CurrentUser, session: SessionDep
) -> ReadResult:
    """Mark the caller's alarms of a room, or with the given ids, read."""
    updated = await service.mark_read(
        session=session, user_id=user.id, room_id=body.room_id, ids=body.ids
    )
    unread = await service.count_unread(session=session, user_id=user.id)
    if updated:
        notice = ReadNotice(room_id=body.room_id, ids=body.ids, unread_count=unread)
        await request.app.state.delivery.push_read(user.id, notice)
    return ReadResult(updated=updated, unread_count=unread)
