"""Who may use a room: a projection of boards' rooms, fed by ``board.*`` events, ``room.left``
(a SYSTEM line, and the room read-only) and ``user.blocked`` (the shared rooms read-only,
silently: no line, so the blocked member is not told).

A room this instance has not seen is looked up in the projection table, and failing that,
asked of boards over HTTP with the caller's own token (boards answers 200 only to a member);
a 200 is stored in the projection. Membership never changes once a room exists, so it is
cached; the status may be stale in the cache, which is why the room's owner checks it again
before it stores anything.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from duochat_chat.drafts import Draft
from duochat_chat.forwarding import Router
from duochat_chat.messages import (
    STATUS,
    SYSTEM,
    Notice,
    closed_notice,
    left_notice,
    matched_notice,
    rejected_notice,
    utcnow_ms,
)
from duochat_chat.models import Room
from duochat_chat.rooms import STATUS_RANK, is_read_only, is_room_id
from duochat_common.db import Database
from duochat_common.errors import Forbidden, NotFound, Unavailable
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
from duochat_common.logs import request_id_headers
from duochat_common.tokens import AuthUser
from duochat_common.tracing import current_traceparent

log = logging.getLogger(__name__)
NEGATIVE_CACHE_S = 5.0


class NotMember(Forbidden):
    default_code = "not_a_member"


class NoSuchRoom(NotFound):
    """An id that cannot name a room: refused before it reaches a query or a URL."""


@dataclass(frozen=True, slots=True)
class Person:
    """A room member, as the cache keeps it (one per member of every room a socket uses, so a
    plain slotted object rather than a model)."""

    id: int
    username: str

    @classmethod
    def of(cls, ref: UserRef | dict[str, Any]) -> Person:
        if isinstance(ref, dict):
            return cls(int(ref["id"]), str(ref["username"]))
        return cls(ref.id, ref.username)


@dataclass(frozen=True, slots=True)
class RoomInfo:
    room_id: str
    board_id: int
    board_title: str
    writer: Person
    applicant: Person
    status: str

    def is_member(self, user_id: int) -> bool:
        return user_id in (self.writer.id, self.applicant.id)

    @property
    def read_only(self) -> bool:
        return is_read_only(self.status)

    @classmethod
    def from_row(cls, row: Any) -> RoomInfo:
        return cls(
            room_id=row.room_id,
            board_id=row.board_id,
            board_title=row.board_title,
            writer=Person(row.writer_id, row.writer_name),
            applicant=Person(row.applicant_id, row.applicant_name),
            status=row.status,
        )


class Membership:
    def __init__(
        self, db: Database, *, http: httpx.AsyncClient, boards_url: str, router: Router
    ) -> None:
        self.db = db
        self.http = http
        self.boards_url = boards_url.rstrip("/")
        self.router = router
        self.rooms: dict[str, RoomInfo] = {}
        self.entered: set[tuple[str, int]] = set()
        self._negative: dict[tuple[str, int], float] = {}

    async def room_for(self, room_id: str, user: AuthUser, token: str | None) -> RoomInfo:
        """The room, if ``user`` is one of its two members; else ``NotMember``."""
        if not is_room_id(room_id):
            raise NoSuchRoom("no such room")
        info = self.rooms.get(room_id) or await self._load(room_id)
        if info is None:
            miss = self._negative.get((room_id, user.id))
            if miss is not None and time.monotonic() - miss < NEGATIVE_CACHE_S:
                raise NotMember("you are not a member of this room")
            info = await self._ask_boards(room_id, token)
            if info is None:
                self._negative[(room_id, user.id)] = time.monotonic()
                if len(self._negative) > 10_000:
                    self._negative.clear()
                raise NotMember("you are not a member of this room")
        if not info.is_member(user.id):
            raise NotMember("you are not a member of this room")
        return info

    async def _load(self, room_id: str) -> RoomInfo | None:
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(select(Room).where(Room.room_id == room_id))).first()
        if row is None:
            return None
        info = RoomInfo.from_row(row)
        self.rooms[room_id] = info
        return info

    async def _ask_boards(self, room_id: str, token: str | None) -> RoomInfo | None:
        if not token:
            return None
        try:
            response = await self.http.get(
                f"{self.boards_url}/boards/rooms/{quote(room_id, safe='')}",
                headers={"Authorization": f"Bearer {token}", **request_id_headers()},
            )
        except httpx.HTTPError as exc:
            raise Unavailable("cannot check room membership right now") from exc
        if response.status_code in (401, 403, 404, 422):
            return None
        if response.status_code != 200:
            raise Unavailable("cannot check room membership right now")
        try:
            data = response.json()
            info = RoomInfo(
                room_id=str(data["roomId"]),
                board_id=int(data["boardId"]),
                board_title=str(data.get("boardTitle") or ""),
                writer=Person.of(data["writer"]),
                applicant=Person.of(data["applicant"]),
                status=str(data.get("status") or "open"),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("boards answered a room lookup with an unexpected body")
            return None  # an answer we cannot read grants nothing
        if info.room_id != room_id:
            return None
        await self.remember(info)
        return self.rooms.get(room_id, info)

    async def remember(self, info: RoomInfo) -> None:
        """Store a room in the projection (first writer wins; status only moves forward)."""
        values = {
            "room_id": info.room_id,
            "board_id": info.board_id,
            "board_title": info.board_title[:200],
            "writer_id": info.writer.id,
            "writer_name": info.writer.username,
            "applicant_id": info.applicant.id,
            "applicant_name": info.applicant.username,
            "status": info.status if info.status in STATUS_RANK else "open",
            "updated_at": utcnow_ms(),
        }
        try:
            async with self.db.engine.begin() as conn:
                await conn.execute(insert(Room).values(**values))
        except IntegrityError:
            if values["status"] != "open":
                await self.set_status(info.room_id, str(values["status"]))
        self.rooms.pop(info.room_id, None)
        await self._load(info.room_id)

    async def set_status(self, room_id: str, status: str) -> None:
        """Move a room forward to ``status`` without posting anything."""
        lower = [s for s, rank in STATUS_RANK.items() if rank < STATUS_RANK[status]]
        async with self.db.engine.begin() as conn:
            await conn.execute(
                update(Room)
                .where(Room.room_id == room_id, Room.status.in_(lower))
                .values(status=status, updated_at=utcnow_ms())
            )
        self.rooms.pop(room_id, None)

    # -- boards events -------------------------------------------------------------------------

    async def handle_event(self, envelope: Envelope) -> None:
        if envelope.type == BoardApplied.TYPE:
            applied = BoardApplied.parse(envelope)
            await self.remember(
                RoomInfo(
                    room_id=applied.room_id,
                    board_id=applied.board_id,
                    board_title=applied.board_title,
                    writer=Person.of(applied.writer),
                    applicant=Person.of(applied.applicant),
                    status="open",
                )
            )
        elif envelope.type == BoardMatched.TYPE:
            matched = BoardMatched.parse(envelope)
            pair = matched_notice(
                matched.writer.username, matched.matched.applicant.username, matched.board_title
            )
            await self._post_status(matched, [matched.matched], "matched", pair, to_applicant=False)
            notice = rejected_notice(matched.writer.username)
            await self._post_status(matched, matched.rejected, "rejected", notice)
        elif envelope.type == BoardClosed.TYPE:
            closed = BoardClosed.parse(envelope)
            notice = closed_notice(closed.writer.username, closed.board_title)
            await self._post_status(closed, closed.rooms, "closed", notice)
        elif envelope.type == RoomLeft.TYPE:
            left = RoomLeft.parse(envelope)
            room = left.room
            other = room.applicant if left.by.id == room.writer.id else room.writer
            notice = left_notice(left.by.username)
            await self._end([room], SYSTEM, "left", notice, audience=other.id)
        elif envelope.type == UserBlocked.TYPE:
            await self._end(UserBlocked.parse(envelope).rooms, STATUS, "blocked", None)

    async def _end(
        self,
        rooms: list[RoomDetail],
        kind: str,
        status: str,
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
            self.rooms.pop(room.room_id, None)

    async def _ensure(self, board_id: int, title: str, writer: UserRef, ref: RoomRef) -> None:
        if ref.room_id not in self.rooms and await self._load(ref.room_id) is None:
            await self.remember(
                RoomInfo(
                    ref.room_id,
                    board_id,
                    title,
                    Person.of(writer),
                    Person.of(ref.applicant),
                    "open",
                )
            )

    async def _post_status(
        self,
        event: BoardMatched | BoardClosed,
        refs: list[RoomRef],
        status: str,
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
            self.rooms.pop(ref.room_id, None)


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
