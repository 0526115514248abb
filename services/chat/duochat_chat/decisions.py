"""Boards' decisions, applied to chat's rooms: the handler of chat's consumer of
``events.boards``.

- ``board.applied``: the new room enters the projection (``membership.py``).
- ``board.matched`` / ``board.closed``: a SYSTEM line in each room, stored with its new status.
- ``room.left``: a SYSTEM line for the other member, and the room read-only.
- ``user.blocked``: the pair's rooms read-only, silently (a ``STATUS`` draft: no line, so the
  blocked member is not told).

Each change goes to the room's owner as a draft (``forwarding.py``), so it is ordered with the
room's messages and stored once even if the event is delivered twice.
"""

from __future__ import annotations

import asyncio

from duochat_chat.drafts import Draft
from duochat_chat.forwarding import Router
from duochat_chat.membership import Membership, Person, RoomInfo
from duochat_chat.messages import (
    STATUS,
    SYSTEM,
    Notice,
    closed_notice,
    left_notice,
    matched_notice,
    rejected_notice,
)
from duochat_common.events.envelope import Envelope
from duochat_common.events.schemas import (
    BoardApplied,
    BoardClosed,
    BoardMatched,
    RoomDetail,
    RoomLeft,
    RoomRef,
    UserBlocked,
    UserRef,
)
from duochat_common.room_status import RoomStatus
from duochat_common.tracing import current_traceparent


class BoardDecisions:
    """Turns each ``board.*``, ``room.left`` and ``user.blocked`` event into drafts for the
    rooms' owners."""

    def __init__(self, membership: Membership, *, router: Router) -> None:
        self.membership = membership
        self.router = router

    async def handle_event(self, envelope: Envelope) -> None:
        """The handler of chat's consumer of ``events.boards``."""
        if envelope.type == BoardApplied.TYPE:
            applied = BoardApplied.parse(envelope)
            await self.membership.remember(
                RoomInfo(
                    room_id=applied.room_id,
                    board_id=applied.board_id,
                    board_title=applied.board_title,
                    writer=Person.of(applied.writer),
                    applicant=Person.of(applied.applicant),
                    status=RoomStatus.OPEN,
                )
            )
        elif envelope.type == BoardMatched.TYPE:
            matched = BoardMatched.parse(envelope)
            pair = matched_notice(
                matched.writer.username, matched.matched.applicant.username, matched.board_title
            )
            await self._post_status(
                matched, [matched.matched], RoomStatus.MATCHED, pair, to_applicant=False
            )
            notice = rejected_notice(matched.writer.username)
            await self._post_status(matched, matched.rejected, RoomStatus.REJECTED, notice)
        elif envelope.type == BoardClosed.TYPE:
            closed = BoardClosed.parse(envelope)
            notice = closed_notice(closed.writer.username, closed.board_title)
            await self._post_status(closed, closed.rooms, RoomStatus.CLOSED, notice)
        elif envelope.type == RoomLeft.TYPE:
            left = RoomLeft.parse(envelope)
            room = left.room
            other = room.applicant if left.by.id == room.writer.id else room.writer
            notice = left_notice(left.by.username)
            await self._end([room], SYSTEM, RoomStatus.LEFT, notice, audience=other.id)
        elif envelope.type == UserBlocked.TYPE:
            await self._end(UserBlocked.parse(envelope).rooms, STATUS, RoomStatus.BLOCKED, None)

    async def _end(
        self,
        rooms: list[RoomDetail],
        kind: str,
        status: RoomStatus,
        notice: Notice | None,
        *,
        audience: int | None = None,
    ) -> None:
        """Move each room to ``status`` through its owner (which then refuses every SEND), with
        a SYSTEM line for ``audience`` or (``STATUS``) with none."""
        futures = []
        for room in rooms:
            await self._ensure(
                room.board_id,
                room.board_title,
                room.writer,
                RoomRef(room_id=room.room_id, applicant=room.applicant),
            )
            draft = system_draft(room.room_id, status, notice, audience=audience, kind=kind)
            futures.append(self.router.submit(draft))
        await asyncio.gather(*futures)
        for room in rooms:
            self.membership.forget(room.room_id)

    async def _ensure(self, board_id: int, title: str, writer: UserRef, ref: RoomRef) -> None:
        """The room in the projection, even if its ``board.applied`` has not come yet."""
        if (
            ref.room_id not in self.membership.rooms
            and await self.membership.load(ref.room_id) is None
        ):
            await self.membership.remember(
                RoomInfo(
                    ref.room_id,
                    board_id,
                    title,
                    Person.of(writer),
                    Person.of(ref.applicant),
                    RoomStatus.OPEN,
                )
            )

    async def _post_status(
        self,
        event: BoardMatched | BoardClosed,
        refs: list[RoomRef],
        status: RoomStatus,
        notice: Notice,
        *,
        to_applicant: bool = True,
    ) -> None:
        """A SYSTEM message in each room, stored with the status change (once, even if the
        event is delivered twice); addressed to the applicant unless ``to_applicant`` is off
        (the writer decided, and knows: the line is not the writer's unread)."""
        futures = []
        for ref in refs:
            await self._ensure(event.board_id, event.board_title, event.writer, ref)
            audience = ref.applicant.id if to_applicant else None
            draft = system_draft(ref.room_id, status, notice, audience=audience)
            draft.trace = current_traceparent()  # the board event's trace, if traced
            futures.append(self.router.submit(draft))
        await asyncio.gather(*futures)
        for ref in refs:
            self.membership.forget(ref.room_id)


def system_draft(
    room_id: str, status: str, notice: Notice | None, *, audience: int | None, kind: str = SYSTEM
) -> Draft:
    """A draft that moves ``room_id`` to ``status``: with the ``notice`` line (SYSTEM), or
    without a line (``STATUS``, ``notice`` None)."""
    return Draft(
        room_id,
        kind,
        None,
        "system",
        "" if notice is None else notice.text,
        new_status=status,
        audience=audience,
        code=None if notice is None else notice.kind,
        params=None if notice is None else notice.params,
    )
