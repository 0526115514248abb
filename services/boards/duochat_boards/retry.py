"""Running a staged change again when a concurrent one won a race for the same new row.

Two requests that create the same block or mute at once both find no row; InnoDB then either
fails one on the primary key (IntegrityError) or picks one as a deadlock victim (1213). Either
way the loser's transaction is rolled back, and staging again finds the winner's row.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")
DEADLOCK = 1213


def _lost_race(exc: Exception) -> bool:
    if isinstance(exc, IntegrityError):
        return True
    args: tuple[object, ...] = tuple(getattr(getattr(exc, "orig", None), "args", None) or ())
    return bool(args) and args[0] == DEADLOCK


async def again_on_race(
    session: AsyncSession, stage: Callable[[], Awaitable[T]], tries: int = 3
) -> T:
    """``await stage()``; if it lost a race for a new row, roll back and stage again."""
    for attempt in range(tries):
        try:
            return await stage()
        except (IntegrityError, OperationalError) as exc:
            if attempt == tries - 1 or not _lost_race(exc):
                raise
            await session.rollback()
    raise AssertionError("unreachable")
