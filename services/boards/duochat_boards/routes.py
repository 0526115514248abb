"""boards' HTTP routes: parse, call one service function, shape the reply."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from duochat_boards import service
from duochat_boards.models import BoardStatus
from duochat_boards.outbox import Outbox
from duochat_boards.schemas import (
    BoardCreate,
    BoardOut,
    BoardPage,
    ErrorOut,
    MatchRequest,
    Role,
    RoomList,
    RoomOut,
)
from duochat_common.deps import CurrentUser, SessionDep

router = APIRouter(prefix="/boards", tags=["boards"])


def _outbox(request: Request) -> Outbox:
    outbox: Outbox = request.app.state.outbox
    return outbox


OutboxDep = Annotated[Outbox, Depends(_outbox)]
# Ids are BIGINT; a larger number is a 422, not a database overflow.
BoardId = Annotated[int, Path(ge=1, le=2**63 - 1)]
RoomId = Annotated[str, Path(min_length=1, max_length=64)]


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    described = {
        400: "The body could not be read",
        401: "Not signed in, or the access token is invalid",
        403: "Signed in, but not allowed",
        404: "No such board or room",
        409: "The board's state forbids this (`already_applied`, `own_board`, `board_closed`)",
        422: "The request is malformed",
    }
    return {s: {"model": ErrorOut, "description": described[s]} for s in (401, 422, *statuses)}


def _with_body(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return _errors(400, *statuses)


# The rooms routes come first: "/boards/rooms" must not reach "/boards/{board_id}".
@router.get("/rooms", response_model=RoomList, responses=_errors())
async def list_rooms(
    user: CurrentUser,
    session: SessionDep,
    role: Annotated[
        Role | None,
        Query(
            description="writer: rooms of boards I wrote; applicant: rooms I applied from; "
            "omitted: both"
        ),
    ] = None,
) -> RoomList:
    rooms = await service.list_rooms(session=session, user=user, role=role)
    return RoomList(items=[RoomOut.of(room) for room in rooms])


@router.get("/rooms/{room_id}", response_model=RoomOut, responses=_errors(403, 404))
async def get_room(room_id: RoomId, user: CurrentUser, session: SessionDep) -> RoomOut:
    return RoomOut.of(await service.get_room(session=session, room_id=room_id, user=user))


@router.post("", status_code=201, response_model=BoardOut, responses=_with_body())
async def create_board(
    body: BoardCreate, user: CurrentUser, session: SessionDep, outbox: OutboxDep
) -> BoardOut:
    board = await service.create_board(
        session=session, outbox=outbox, user=user, title=body.title, content=body.content
    )
    return BoardOut.of(board)


@router.get("", response_model=BoardPage, responses=_errors())
async def list_boards(
    user: CurrentUser,
    session: SessionDep,
    status: BoardStatus | None = None,
    q: Annotated[
        str | None, Query(max_length=100, description="Searches title and content")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> BoardPage:
    boards, next_cursor = await service.list_boards(
        session=session, status=status, q=q, limit=limit, cursor=cursor
    )
    return BoardPage(items=[BoardOut.of(b) for b in boards], next_cursor=next_cursor)


@router.get("/{board_id}", response_model=BoardOut, responses=_errors(404))
async def get_board(board_id: BoardId, user: CurrentUser, session: SessionDep) -> BoardOut:
    return BoardOut.of(await service.get_board(session=session, board_id=board_id))


@router.post(
    "/{board_id}/apply", status_code=201, response_model=RoomOut, responses=_errors(404, 409)
)
async def apply(
    board_id: BoardId, user: CurrentUser, session: SessionDep, outbox: OutboxDep
) -> RoomOut:
    room = await service.apply(session=session, outbox=outbox, board_id=board_id, user=user)
    return RoomOut.of(room)


@router.post("/{board_id}/match", response_model=BoardOut, responses=_with_body(403, 404, 409))
async def match(
    board_id: BoardId,
    body: MatchRequest,
    user: CurrentUser,
    session: SessionDep,
    outbox: OutboxDep,
) -> BoardOut:
    board = await service.match(
        session=session, outbox=outbox, board_id=board_id, room_id=body.room_id, user=user
    )
    return BoardOut.of(board)


@router.delete(
    "/{board_id}", status_code=204, response_class=Response, responses=_errors(403, 404, 409)
)
async def close_board(
    board_id: BoardId, user: CurrentUser, session: SessionDep, outbox: OutboxDep
) -> Response:
    await service.close(session=session, outbox=outbox, board_id=board_id, user=user)
    return Response(status_code=204)
