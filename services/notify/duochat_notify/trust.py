"""Blocks and mutes, as boards announces them, and the alarms they silence.

- A user who blocked someone gets no alarm from them (``from`` is the blocked user), whatever
  its kind; the block also marks read what they had not read yet from that user.
- A member who muted a room gets no ``message`` or ``left`` alarm of that room (board decisions
  about it still come); muting marks those read. Chat's unread counts are not notify's: they
  stay as they are.

Each change carries boards' ``version`` of that pair; an event older than what is stored
changes nothing, so a block and an unblock handled out of order end as boards ended.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, insert, or_, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from duochat_notify.models import Alarm, BlockView, MuteView, utcnow
from duochat_notify.service import NewAlarm

MUTED_KINDS = ("message", "left")


async def _upsert(
    session: AsyncSession, model: Any, key: dict[str, Any], values: dict[str, Any]
) -> bool:
    """Store ``values`` under ``key`` unless a version at least as new is there; True if
    stored. Commits."""
    version = values["version"]
    conditions = [getattr(model, k) == v for k, v in key.items()]
    for _ in range(2):
        changed = await session.execute(
            update(model).where(*conditions, model.version < version).values(**values)
        )
        if changed.rowcount:  # type: ignore[attr-defined]
            await session.commit()
            return True
        exists = await session.scalar(select(model.version).where(*conditions))
        if exists is not None:
            await session.commit()
            return False
        try:
            await session.execute(insert(model).values(**key, **values))
            await session.commit()
            return True
        except IntegrityError:  # another consumer stored the pair meanwhile: compare again
            await session.rollback()
            continue
    return False


async def apply_block(
    *, session: AsyncSession, blocker_id: int, blocked_id: int, active: bool, version: int
) -> list[int]:
    """Record a block change; for a block, mark read the blocker's unread alarms from the
    blocked user and return their ids (empty when nothing changed)."""
    stored = await _upsert(
        session,
        BlockView,
        {"blocker_id": blocker_id, "blocked_id": blocked_id},
        {"active": active, "version": version},
    )
    if not stored or not active:
        return []
    return await _read(session, Alarm.user_id == blocker_id, Alarm.from_user_id == blocked_id)


async def apply_mute(
    *, session: AsyncSession, user_id: int, room_id: str, muted: bool, version: int
) -> list[int]:
    """Record a mute change; for a mute, mark read the member's unread alarms the mute
    silences in that room and return their ids."""
    stored = await _upsert(
        session,
        MuteView,
        {"user_id": user_id, "room_id": room_id},
        {"muted": muted, "version": version},
    )
    if not stored or not muted:
        return []
    return await _read(
        session, Alarm.user_id == user_id, Alarm.room_id == room_id, Alarm.kind.in_(MUTED_KINDS)
    )


async def _read(session: AsyncSession, *where: Any) -> list[int]:
    ids = list(
        await session.scalars(select(Alarm.id).where(*where, Alarm.read_at.is_(None)).limit(1000))
    )
    if ids:
        await session.execute(update(Alarm).where(Alarm.id.in_(ids)).values(read_at=utcnow()))
        await session.commit()
    return ids


async def audible(*, session: AsyncSession, alarms: Sequence[NewAlarm]) -> list[NewAlarm]:
    """The alarms that no block or mute silences."""
    senders = {(a.user_id, a.from_user_id) for a in alarms if a.from_user_id is not None}
    rooms = {(a.user_id, a.room_id) for a in alarms if a.room_id and a.kind in MUTED_KINDS}
    blocked: set[tuple[int, int]] = set()
    muted: set[tuple[int, str]] = set()
    if senders:
        found = await session.execute(
            select(BlockView.blocker_id, BlockView.blocked_id).where(
                BlockView.active.is_(True),
                or_(
                    *(
                        and_(BlockView.blocker_id == u, BlockView.blocked_id == f)
                        for u, f in senders
                    )
                ),
            )
        )
        blocked = {(int(u), int(f)) for u, f in found.all()}
    if rooms:
        found = await session.execute(
            select(MuteView.user_id, MuteView.room_id).where(
                MuteView.muted.is_(True),
                tuple_(MuteView.user_id, MuteView.room_id).in_(list(rooms)),
            )
        )
        muted = {(int(u), str(r)) for u, r in found.all()}
    if not blocked and not muted:
        return list(alarms)
    return [
        a
        for a in alarms
        if (a.user_id, a.from_user_id) not in blocked
        and not (a.kind in MUTED_KINDS and (a.user_id, a.room_id) in muted)
    ]
