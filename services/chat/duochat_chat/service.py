"""What the REST routes do: history, unread counts, read marks, latest messages, presence."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, func, insert, literal, or_, select, update
from sqlalchemy.exc import IntegrityError

from duochat_chat.history import row_wire
from duochat_chat.messages import DELETED, READ, SYSTEM, TALK, transient, utcnow_ms
from duochat_chat.models import Message, OutboxBatch, ReadMark, Room
from duochat_chat.runtime import Runtime
from duochat_common.errors import Conflict, Forbidden, NotFound
from duochat_common.events.schemas import ChatRoomRead, UserRef
from duochat_common.tokens import AuthUser

log = logging.getLogger(__name__)
MAX_PAGE = 200
UNSEND_WINDOW = timedelta(minutes=5)


def _mine(user_id: int) -> Any:
    return or_(Room.writer_id == user_id, Room.applicant_id == user_id)


async def history(
    *,
    rt: Runtime,
    room_id: str,
    user: AuthUser,
    token: str | None,
    before: int | None,
    after: int | None,
    limit: int,
) -> dict[str, Any]:
    """A page of a room's messages, ascending, with how far the other member has read;
    members only."""
    info = await rt.membership.room_for(room_id, user, token)
    other = info.applicant.id if user.id == info.writer.id else info.writer.id
    limit = max(1, min(limit, MAX_PAGE))
    where = [Message.room_id == room_id]
    if before is not None:
        where.append(Message.id < before)
    if after is not None:
        where.append(Message.id > after)
        order = Message.id.asc()
    else:
        order = Message.id.desc()
    stmt = select(Message).where(*where).order_by(order).limit(limit + 1)
    async with rt.db.engine.connect() as conn:
        rows = list((await conn.execute(stmt)).all())
        other_read = await conn.scalar(
            select(ReadMark.last_read_id).where(
                ReadMark.room_id == room_id, ReadMark.user_id == other
            )
        )
    has_more = len(rows) > limit
    rows = rows[:limit]
    if after is None:
        rows.reverse()
    return {
        "items": [row_wire(r) for r in rows],
        "hasMore": has_more,
        "otherLastReadId": other_read or 0,
    }


async def unread_counts(*, rt: Runtime, user: AuthUser) -> dict[str, int]:
    """Per room of mine: TALK and SYSTEM messages from others after my read mark."""
    mark = func.coalesce(ReadMark.last_read_id, literal(0))
    stmt = (
        select(Room.room_id, func.count(Message.id))
        .select_from(Room)
        .outerjoin(ReadMark, and_(ReadMark.room_id == Room.room_id, ReadMark.user_id == user.id))
        .outerjoin(
            Message,
            and_(
                Message.room_id == Room.room_id,
                Message.id > mark,
                Message.type.in_((TALK, SYSTEM)),
                or_(Message.sender_id.is_(None), Message.sender_id != user.id),
                or_(Message.audience_id.is_(None), Message.audience_id == user.id),
                Message.deleted_at.is_(None),
            ),
        )
        .where(_mine(user.id))
        .group_by(Room.room_id)
    )
    async with rt.db.engine.connect() as conn:
        return {room_id: count for room_id, count in (await conn.execute(stmt)).all()}


async def latest(*, rt: Runtime, user: AuthUser) -> dict[str, dict[str, Any]]:
    """The newest message of each room of mine that has one."""
    heads = (
        select(Message.room_id, func.max(Message.id).label("head"))
        .join(Room, Room.room_id == Message.room_id)
        .where(_mine(user.id))
        .group_by(Message.room_id)
        .subquery()
    )
    stmt = select(Message).join(
        heads, and_(heads.c.room_id == Message.room_id, heads.c.head == Message.id)
    )
    async with rt.db.engine.connect() as conn:
        return {row.room_id: row_wire(row) for row in (await conn.execute(stmt)).all()}


async def mark_read(
    *, rt: Runtime, room_id: str, user: AuthUser, token: str | None, last_read_id: int
) -> None:
    """Move my read mark forward (never back) and tell notify (through the outbox)."""
    await rt.membership.room_for(room_id, user, token)
    heads = await rt.history.heads([room_id])
    value = min(last_read_id, heads.get(room_id, 0))
    event = ChatRoomRead(
        room_id=room_id, user=UserRef(id=user.id, username=user.username), last_read_id=value
    ).envelope()
    events = [event.to_json()]
    outbox = {
        "id": event.id,
        "payload": json.dumps({"events": events}),
        "created_at": utcnow_ms(),
    }
    forward = (
        update(ReadMark)
        .where(
            ReadMark.room_id == room_id,
            ReadMark.user_id == user.id,
            ReadMark.last_read_id < value,
        )
        .values(last_read_id=value)
    )
    advanced = True
    async with rt.db.engine.begin() as conn:
        if not (await conn.execute(forward)).rowcount:
            advanced = False
            exists = await conn.scalar(
                select(ReadMark.last_read_id).where(
                    ReadMark.room_id == room_id, ReadMark.user_id == user.id
                )
            )
            if exists is None:
                try:
                    async with conn.begin_nested():
                        await conn.execute(
                            insert(ReadMark).values(
                                room_id=room_id, user_id=user.id, last_read_id=value
                            )
                        )
                    advanced = True
                except IntegrityError:  # another request made it first: move it forward
                    advanced = bool((await conn.execute(forward)).rowcount)
        await conn.execute(insert(OutboxBatch).values(**outbox))
    rt.relay.publish(event.id, events)
    if advanced:  # the other member's screen shows their message read, live
        body = transient(type=READ, roomId=room_id, sender=user.username, lastReadId=value)
        await rt.delivery.transient(room_id, body)


async def unsend(
    *, rt: Runtime, room_id: str, message_id: int, user: AuthUser, token: str | None
) -> None:
    """Unsend my TALK within UNSEND_WINDOW: its text goes, a tombstone (id, time) stays, and the
    room's subscribers are told (``DELETED``)."""
    await rt.membership.room_for(room_id, user, token)
    now = utcnow_ms()
    async with rt.db.engine.begin() as conn:
        row = (
            await conn.execute(
                select(Message.sender_id, Message.type, Message.created_at, Message.deleted_at)
                .where(Message.room_id == room_id, Message.id == message_id)
                .with_for_update()
            )
        ).first()
        if row is None:
            raise NotFound("no such message in this room")
        if row.deleted_at is not None:
            return  # unsent already: the same answer again
        if row.type != TALK or row.sender_id != user.id:
            raise Forbidden("only its sender can unsend a message", code="not_your_message")
        if now - row.created_at > UNSEND_WINDOW:
            raise Conflict("a message can be unsent for 5 minutes only", code="too_late")
        await conn.execute(
            update(Message)
            .where(Message.room_id == room_id, Message.id == message_id)
            .values(message="", deleted_at=now)
        )
    await rt.delivery.transient(room_id, transient(type=DELETED, roomId=room_id, id=message_id))


async def presence(*, rt: Runtime, room_id: str, user: AuthUser, token: str | None) -> dict:
    """Who is in the room now; members only."""
    await rt.membership.room_for(room_id, user, token)
    members = await rt.presence.members(room_id)
    return {"roomId": room_id, "members": sorted(set(members.values()))}
