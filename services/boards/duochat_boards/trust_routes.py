"""Routes of blocks and reports (thin: parse, call, shape)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from duochat_boards import blocks, reports
from duochat_boards.deps import (
    MessageSourceDep,
    OutboxDep,
    ReportLimiterDep,
    TokenDep,
    UserId,
    errors,
    with_body,
)
from duochat_boards.models import ReportReason
from duochat_boards.schemas import BlockIn, BlockList, BlockOut, ReportIn, ReportOut, ReportPage
from duochat_common.deps import CurrentUser, OperatorUser, SessionDep

router = APIRouter(prefix="/boards", tags=["trust"])


@router.get("/blocks", response_model=BlockList, responses=errors())
async def list_blocks(user: CurrentUser, session: SessionDep) -> BlockList:
    found = await blocks.list_blocks(session=session, user=user)
    return BlockList(items=[BlockOut.of(block) for block in found])


@router.post(
    "/blocks",
    status_code=201,
    response_model=BlockOut,
    responses={**with_body(404), 200: {"model": BlockOut, "description": "Already blocked"}},
)
async def block(
    body: BlockIn, user: CurrentUser, session: SessionDep, outbox: OutboxDep, response: Response
) -> BlockOut:
    row, created = await blocks.block(
        session=session, outbox=outbox, blocker=user, blocked_id=body.user_id
    )
    if not created:
        response.status_code = 200
    return BlockOut.of(row)


@router.delete("/blocks/{user_id}", status_code=204, response_class=Response, responses=errors())
async def unblock(
    user_id: UserId, user: CurrentUser, session: SessionDep, outbox: OutboxDep
) -> Response:
    await blocks.unblock(session=session, outbox=outbox, blocker=user, blocked_id=user_id)
    return Response(status_code=204)


@router.post(
    "/reports", status_code=201, response_model=ReportOut, responses=with_body(403, 404, 429, 503)
)
async def report(
    body: ReportIn,
    user: CurrentUser,
    session: SessionDep,
    outbox: OutboxDep,
    limiter: ReportLimiterDep,
    source: MessageSourceDep,
    token: TokenDep,
) -> ReportOut:
    row = await reports.report(
        session=session,
        outbox=outbox,
        limiter=limiter,
        source=source,
        user=user,
        token=token,
        reason=ReportReason(body.reason),
        note=body.note,
        room_id=body.room_id,
        board_id=body.board_id,
        message_ids=body.message_ids,
    )
    return ReportOut.of(row)


@router.get("/reports", response_model=ReportPage, responses=errors(403))
async def list_reports(
    operator: OperatorUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    user_id: Annotated[
        int | None,
        Query(alias="userId", ge=1, le=2**63 - 1, description="only reports about this user"),
    ] = None,
) -> ReportPage:
    rows, next_cursor = await reports.list_reports(
        session=session, limit=limit, cursor=cursor, reported_id=user_id
    )
    return ReportPage(items=[ReportOut.of(r) for r in rows], next_cursor=next_cursor)
