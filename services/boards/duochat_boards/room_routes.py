"""Routes of one member's rooms: list, look up, leave, mute (thin: parse, call, shape)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from duochat_boards import rooms
from duochat_boards.deps import OutboxDep, RoomId, SettingsDep, errors
from duochat_boards.schemas import Role, RoomList, RoomOut
from duochat_common.deps import CurrentUser, SessionDep

router = APIRouter(prefix="/boards/rooms", tags=["rooms"])


@router.get("", response_model=RoomList, responses=errors())
async def list_rooms(
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    role: Annotated[
        Role | None,
        Query(
            description="writer: rooms of boards I wrote; applicant: rooms I applied from; "
            "omitted: both"
        ),
    ] = None,
    ended: Annotated[
        rooms.Ended,
        Query(
            description="read-only rooms (rejected, closed, left, blocked): recent lists them "
            "for DUOCHAT_ENDED_ROOMS_LISTED_DAYS (30) after they ended; exclude lists none; "
            "include lists all"
        ),
    ] = "recent",
) -> RoomList:
    found = await rooms.list_rooms(
        session=session,
        user=user,
        role=role,
        ended=ended,
        recent_days=settings.ended_rooms_listed_days,
    )
    return RoomList(items=[RoomOut.of(room, viewer=user.id, muted=m) for room, m in found])


@router.get("/{room_id}", response_model=RoomOut, responses=errors(403, 404))
async def get_room(room_id: RoomId, user: CurrentUser, session: SessionDep) -> RoomOut:
    room, muted = await rooms.get_room(session=session, room_id=room_id, user=user)
    return RoomOut.of(room, viewer=user.id, muted=muted)


@router.post("/{room_id}/leave", response_model=RoomOut, responses=errors(403, 404, 409))
async def leave(
    room_id: RoomId, user: CurrentUser, session: SessionDep, outbox: OutboxDep
) -> RoomOut:
    room, muted = await rooms.leave(session=session, outbox=outbox, room_id=room_id, user=user)
    return RoomOut.of(room, viewer=user.id, muted=muted)


@router.put("/{room_id}/mute", response_model=RoomOut, responses=errors(403, 404))
async def mute(
    room_id: RoomId, user: CurrentUser, session: SessionDep, outbox: OutboxDep
) -> RoomOut:
    room = await rooms.set_muted(
        session=session, outbox=outbox, room_id=room_id, user=user, muted=True
    )
    return RoomOut.of(room, viewer=user.id, muted=True)


@router.delete("/{room_id}/mute", response_model=RoomOut, responses=errors(403, 404))
async def unmute(
    room_id: RoomId, user: CurrentUser, session: SessionDep, outbox: OutboxDep
) -> RoomOut:
    room = await rooms.set_muted(
        session=session, outbox=outbox, room_id=room_id, user=user, muted=False
    )
    return RoomOut.of(room, viewer=user.id, muted=False)
