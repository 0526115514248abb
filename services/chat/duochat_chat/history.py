"""Reads of stored messages, as MESSAGE bodies ready to send (the hub's loader)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select

from duochat_chat.messages import encode, wire
from duochat_chat.models import Message
from duochat_common.db import Database


def row_wire(row: Any) -> dict[str, object]:
    """A stored message's body fields (the MESSAGE frame's and history's)."""
    return wire(
        id=row.id,
        type=row.type,
        room_id=row.room_id,
        sender=row.sender_name,
        message=row.message,
        created_at=row.created_at,
        user_count=row.user_count,
        client_message_id=row.client_message_id,
        deleted=row.deleted_at is not None,
        code=row.code,
        params=None if row.params is None else json.loads(row.params),
    )


class History:
    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def body_of(row: Any) -> str:
        return encode(row_wire(row)).text

    async def after(self, room_id: str, after_id: int, limit: int) -> list[tuple[int, str]]:
        stmt = (
            select(Message)
            .where(Message.room_id == room_id, Message.id > after_id)
            .order_by(Message.id)
            .limit(limit)
        )
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [(row.id, self.body_of(row)) for row in rows]

    async def heads(self, room_ids: list[str]) -> dict[str, int]:
        """Each room's highest stored id (rooms with none are left out)."""
        if not room_ids:
            return {}
        stmt = (
            select(Message.room_id, func.max(Message.id))
            .where(Message.room_id.in_(room_ids))
            .group_by(Message.room_id)
        )
        async with self.db.engine.connect() as conn:
            return {room_id: head for room_id, head in (await conn.execute(stmt)).all()}
