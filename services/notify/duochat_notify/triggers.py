"""Turning board and chat events into alarms (the triggers).

- ``chat.message.sent``: a ``message`` alarm for each recipient who is not in the room. When chat
  could not read a recipient's presence (``presenceKnown: false``), the alarm's live push waits
  out the presence hold and goes only if the alarm is still unread (``held.py``). ENTER and
  QUIT never alarm. SYSTEM messages do not alarm either: chat writes them into rooms when a board
  is matched or closed, and the ``matched``/``rejected`` alarm of that board event already tells
  the user, so a second alarm would only repeat it.
- ``board.applied``: ``applied`` to the board's writer.
- ``board.matched``: ``matched`` to the chosen applicant, ``rejected`` to every other one.
- ``board.closed``: ``rejected`` to every applicant.
- ``chat.room.read``: the reader's alarms of that room become read (a ``message`` alarm only up to
  the read message), and their open streams get a ``read`` event with the new unread count.
- ``room.left``: ``left`` to the other member.
- ``user.blocked`` / ``user.unblocked`` and ``room.muted``: recorded (``trust.py``); from then on
  nothing from a blocked user, and no ``message`` or ``left`` alarm of a muted room, is raised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from duochat_common.db import Database
from duochat_common.events import Envelope
from duochat_common.events.schemas import (
    BoardApplied,
    BoardClosed,
    BoardMatched,
    ChatMessageSent,
    ChatRoomRead,
    RoomLeft,
    RoomMuted,
    UserBlocked,
    UserRef,
    UserUnblocked,
)
from duochat_notify import service, trust
from duochat_notify.delivery import Delivery
from duochat_notify.held import HeldPushes
from duochat_notify.schemas import ReadNotice
from duochat_notify.service import NewAlarm

log = logging.getLogger(__name__)

SILENT_MESSAGE_TYPES = frozenset({"ENTER", "QUIT", "SYSTEM"})


def _naive_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def truncate(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


class Triggers:
    """The handler notify's consumers run for each event of the boards and chat streams."""

    def __init__(
        self,
        *,
        db: Database,
        delivery: Delivery,
        preview_max_chars: int,
        held: HeldPushes | None = None,
    ) -> None:
        self.db = db
        self.delivery = delivery
        # Without it, alarms for recipients of unknown presence are pushed at once.
        self.held = held
        self.preview_max = preview_max_chars
        self._builders: dict[str, Callable[[Envelope], list[NewAlarm]]] = {
            ChatMessageSent.TYPE: self._message_sent,
            BoardApplied.TYPE: self._applied,
            BoardMatched.TYPE: self._matched,
            BoardClosed.TYPE: self._closed,
            RoomLeft.TYPE: self._left,
        }
        # Events that change what later alarms do: the alarms before them are stored first.
        self._changes = {
            ChatRoomRead.TYPE: self._room_read,
            UserBlocked.TYPE: self._blocked,
            UserUnblocked.TYPE: self._blocked,
            RoomMuted.TYPE: self._muted,
        }

    async def handle(self, envelope: Envelope) -> None:
        """Handle one event."""
        await self.handle_batch([envelope])

    async def handle_batch(self, envelopes: Sequence[Envelope]) -> None:
        """Handle events in their stream order: the alarms between two read marks are stored in
        one transaction and pushed in one round trip."""
        pending: list[NewAlarm] = []
        for envelope in envelopes:
            change = self._changes.get(envelope.type)
            if change is not None:
                # A read mark, block or mute applies to the alarms before it: store those first.
                await self.save_and_push(pending)
                pending = []
                await change(envelope)
                continue
            build = self._builders.get(envelope.type)
            if build is not None:  # other event types are not notify's business
                pending += build(envelope)
        await self.save_and_push(pending)

    async def save_and_push(self, alarms: list[NewAlarm]) -> None:
        """Store the alarms (once) and push them to their users' streams (once)."""
        if not alarms:
            return
        async with self.db.session() as session:
            alarms = await trust.audible(session=session, alarms=alarms)
            if not alarms:
                return
            stored = await service.store_alarms(session=session, alarms=alarms)
        waiting = {(a.user_id, a.source_event_id) for a in alarms if a.held}
        if self.held is None or not waiting:
            await self.delivery.push_alarms(stored)
            return
        await self.delivery.push_alarms(
            [a for a in stored if (a.user_id, a.source_event_id) not in waiting]
        )
        await self.held.hold([a for a in stored if (a.user_id, a.source_event_id) in waiting])

    def _board_alarm(
        self,
        envelope: Envelope,
        *,
        to: UserRef,
        kind: str,
        sender: UserRef,
        board_id: int,
        board_title: str,
        room_id: str,
        preview: str,
    ) -> NewAlarm:
        return NewAlarm(
            user_id=to.id,
            kind=kind,
            source_event_id=envelope.id,
            preview=truncate(preview, self.preview_max),
            created_at=_naive_utc(envelope.occurred_at),
            room_id=room_id,
            board_id=board_id,
            board_title=board_title,
            from_user_id=sender.id,
            from_username=sender.username,
        )

    def _applied(self, envelope: Envelope) -> list[NewAlarm]:
        event = BoardApplied.parse(envelope)
        return [
            self._board_alarm(
                envelope,
                to=event.writer,
                kind="applied",
                sender=event.applicant,
                board_id=event.board_id,
                board_title=event.board_title,
                room_id=event.room_id,
                preview=f"{event.applicant.username} applied to {event.board_title}",
            )
        ]

    def _matched(self, envelope: Envelope) -> list[NewAlarm]:
        event = BoardMatched.parse(envelope)
        writer, title = event.writer.username, event.board_title
        decisions = [("matched", event.matched, f"{writer} matched with you on {title}")]
        decisions += [
            ("rejected", room, f"{writer} matched someone else on {title}")
            for room in event.rejected
        ]
        return [
            self._board_alarm(
                envelope,
                to=room.applicant,
                kind=kind,
                sender=event.writer,
                board_id=event.board_id,
                board_title=title,
                room_id=room.room_id,
                preview=preview,
            )
            for kind, room, preview in decisions
        ]

    def _closed(self, envelope: Envelope) -> list[NewAlarm]:
        event = BoardClosed.parse(envelope)
        return [
            self._board_alarm(
                envelope,
                to=room.applicant,
                kind="rejected",
                sender=event.writer,
                board_id=event.board_id,
                board_title=event.board_title,
                room_id=room.room_id,
                preview=f"{event.writer.username} closed the board {event.board_title}",
            )
            for room in event.rooms
        ]

    def _left(self, envelope: Envelope) -> list[NewAlarm]:
        event = RoomLeft.parse(envelope)
        room = event.room
        other = room.applicant if event.by.id == room.writer.id else room.writer
        return [
            self._board_alarm(
                envelope,
                to=other,
                kind="left",
                sender=event.by,
                board_id=room.board_id,
                board_title=room.board_title,
                room_id=room.room_id,
                preview=f"{event.by.username} left the chat about {room.board_title}",
            )
        ]

    async def _blocked(self, envelope: Envelope) -> None:
        change = (UserBlocked if envelope.type == UserBlocked.TYPE else UserUnblocked).parse(
            envelope
        )
        async with self.db.session() as session:
            read = await trust.apply_block(
                session=session,
                blocker_id=change.blocker.id,
                blocked_id=change.blocked.id,
                active=isinstance(change, UserBlocked),
                version=change.version,
            )
            await self._tell_read(session, change.blocker.id, None, read)

    async def _muted(self, envelope: Envelope) -> None:
        change = RoomMuted.parse(envelope)
        async with self.db.session() as session:
            read = await trust.apply_mute(
                session=session,
                user_id=change.user.id,
                room_id=change.room_id,
                muted=change.muted,
                version=change.version,
            )
            await self._tell_read(session, change.user.id, change.room_id, read)

    async def _tell_read(
        self, session: AsyncSession, user_id: int, room_id: str | None, ids: list[int]
    ) -> None:
        """Alarms a block or mute marked read: the user's open tabs update their badge."""
        if not ids:
            return
        unread = await service.count_unread(session=session, user_id=user_id)
        notice = ReadNotice(room_id=room_id, ids=ids, unread_count=unread)
        await self.delivery.push_read(user_id, notice)

    def _message_sent(self, envelope: Envelope) -> list[NewAlarm]:
        event = ChatMessageSent.parse(envelope)
        if event.type.upper() in SILENT_MESSAGE_TYPES:
            return []
        return [
            NewAlarm(
                user_id=recipient.id,
                kind="message",
                source_event_id=envelope.id,
                preview=truncate(event.preview, self.preview_max),
                created_at=_naive_utc(event.created_at),
                room_id=event.room_id,
                from_user_id=event.sender.id,
                from_username=event.sender.username,
                message_id=event.message_id,
                held=not recipient.presence_known,
            )
            for recipient in event.recipients
            if not recipient.in_room and recipient.id != event.sender.id
        ]

    async def _room_read(self, envelope: Envelope) -> None:
        event = ChatRoomRead.parse(envelope)
        async with self.db.session() as session:
            updated = await service.mark_read(
                session=session,
                user_id=event.user.id,
                room_id=event.room_id,
                up_to_message_id=event.last_read_id,
            )
            if not updated:
                return
            unread = await service.count_unread(session=session, user_id=event.user.id)
        notice = ReadNotice(room_id=event.room_id, ids=None, unread_count=unread)
        await self.delivery.push_read(event.user.id, notice)
