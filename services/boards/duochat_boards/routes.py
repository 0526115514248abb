"""boards' HTTP routes: parse, call one service function, shape the reply."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from duochat_boards import room_routes, service, trust_routes
from duochat_boards.deps import BoardId, OutboxDep, errors, with_body
from duochat_boards.models import BoardStatus
from duochat_boards.schemas import BoardCreate, BoardOut, BoardPage, MatchRequest, RoomOut
from duochat_common.deps import CurrentUser, SessionDep

router = APIRouter()
# First: "/boards/rooms", "/boards/blocks" and "/boards/reports" must not reach "/boards/{id}".
router.include_router(room_routes.router)
router.include_router(trust_routes.router)
boards = APIRouter(prefix="/boards", tags=["boards"])


@boards.post("", status_code=201, response_model=BoardOut, responses=with_body())
async def create_board(
    body: BoardCreate, user: CurrentUser, session: SessionDep, outbox: OutboxDep
) -> BoardOut:
    board = await service.create_board(
        session=session, outbox=outbox, user=user, title=body.title, content=body.content
    )
    return BoardOut.of(board)


@boards.get("", response_model=BoardPage, responses=errors())
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
        session=session, user=user, status=status, q=q, limit=limit, cursor=cursor
    )
    return BoardPage(items=[BoardOut.of(b) for b in boards], next_cursor=next_cursor)


@boards.get("/{board_id}", response_model=BoardOut, responses=errors(404))
async def get_board(board_id: BoardId, user: CurrentUser, session: SessionDep) -> BoardOut:
    return BoardOut.of(await service.get_board(session=session, board_id=board_id, user=user))


@boards.post(
    "/{board_id}/apply", status_code=201, response_model=RoomOut, responses=errors(404, 409)
)
async def apply(
    board_id: BoardId, user: CurrentUser, session: SessionDep, outbox: OutboxDep
) -> RoomOut:
    room = await service.apply(session=session, outbox=outbox, board_id=board_id, user=user)
    return RoomOut.of(room, viewer=user.id)


@boards.post("/{board_id}/match", response_model=BoardOut, responses=with_body(403, 404, 409))
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


@boards.delete(
    "/{board_id}", status_code=204, response_class=Response, responses=errors(403, 404, 409)
)
async def close_board(
    board_id: BoardId, user: CurrentUser, session: SessionDep, outbox: OutboxDep
) -> Response:
    await service.close(session=session, outbox=outbox, board_id=board_id, user=user)
    return Response(status_code=204)


router.include_router(boards)
