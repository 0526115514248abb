"""Who may use a room: a projection of boards' rooms (``chat_rooms``), which boards' events
fill (``decisions.py``) and which this module reads.

A room this instance has not seen is looked up in the projection table, and failing that,
asked of boards over HTTP with the caller's own token (boards answers 200 only to a member);
a 200 is stored in the projection. Membership never changes once a room exists, so it is
cached; the status may be stale in the cache, which is why the room's owner checks it again
before it stores anything.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from duochat_chat.messages import utcnow_ms
from duochat_chat.models import Room
from duochat_chat.rooms import STATUS_RANK, is_read_only, is_room_id
from duochat_common.db import Database
from duochat_common.errors import Forbidden, NotFound, Unavailable
from duochat_common.events.schemas import UserRef
from duochat_common.logs import request_id_headers
from duochat_common.room_status import RoomStatus
from duochat_common.tokens import AuthUser

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
    """The rooms this instance has looked up, and the way to look up the others."""

    def __init__(self, db: Database, *, http: httpx.AsyncClient, boards_url: str) -> None:
        self.db = db
        self.http = http
        self.boards_url = boards_url.rstrip("/")
        self.rooms: dict[str, RoomInfo] = {}
        self.entered: set[tuple[str, int]] = set()
        self._negative: dict[tuple[str, int], float] = {}

    async def room_for(self, room_id: str, user: AuthUser, token: str | None) -> RoomInfo:
        """The room, if ``user`` is one of its two members; else ``NotMember``."""
        if not is_room_id(room_id):
            raise NoSuchRoom("no such room")
        info = self.rooms.get(room_id) or await self.load(room_id)
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

    async def load(self, room_id: str) -> RoomInfo | None:
        """The room as the projection has it (and now cached), or None."""
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
                status=str(data.get("status") or RoomStatus.OPEN),
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
            "status": info.status if info.status in STATUS_RANK else RoomStatus.OPEN,
            "updated_at": utcnow_ms(),
        }
        try:
            async with self.db.engine.begin() as conn:
                await conn.execute(insert(Room).values(**values))
        except IntegrityError:
            if values["status"] != RoomStatus.OPEN:
                await self.set_status(info.room_id, str(values["status"]))
        self.forget(info.room_id)
        await self.load(info.room_id)

    async def set_status(self, room_id: str, status: str) -> None:
        """Move a room forward to ``status`` without posting anything."""
        lower = [s for s, rank in STATUS_RANK.items() if rank < STATUS_RANK[status]]
        async with self.db.engine.begin() as conn:
            await conn.execute(
                update(Room)
                .where(Room.room_id == room_id, Room.status.in_(lower))
                .values(status=status, updated_at=utcnow_ms())
            )
        self.forget(room_id)

    def forget(self, room_id: str) -> None:
        """Drop the cached room: its status moved (the owner checks it again in any case)."""
        self.rooms.pop(room_id, None)
