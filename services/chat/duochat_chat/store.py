"""Storing messages: one writer per instance batches every pending message into a transaction.

For each batch the writer locks the batch's rooms (``SELECT ... FOR UPDATE``, in key order, so
two instances never deadlock), checks membership and read-only status on the locked rows, takes
ids from ``last_id``, inserts every message in one statement and commits. Only then does a
sender get its RECEIPT. Presence (for ``userCount`` and ``in_room``) is read from Redis before
the rooms are locked: the other instance's writer waits on those locks, so they are held only
for the database round trips. On MySQL there are two: the lock, then the rooms' write-back, the
insert and the COMMIT as one query (``mysql_batch``); on SQLite the same through SQLAlchemy.
A batch whose COMMIT went unanswered is looked up before it is retried. After the commit
the batch goes to local subscribers at once, and to the publisher, which appends it to the
fan-out stream and the events stream in one pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pymysql
from sqlalchemy import insert, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from duochat_chat import mysql_batch
from duochat_chat.fanout import Entry, Publisher
from duochat_chat.hub import Hub
from duochat_chat.messages import ENTER, SYSTEM, SYSTEM_SENDER, Body, encode_body, iso, utcnow_ms
from duochat_chat.models import Message, Room
from duochat_chat.presence import Members, Presence
from duochat_common.db import Database
from duochat_common.events.envelope import Envelope
from duochat_common.events.schemas import ChatMessageSent

log = logging.getLogger(__name__)
READ_ONLY = ("rejected", "closed")
LOCK_ERRORS = (1205, 1213)  # lock wait timeout, deadlock
STATUS_RANK = {"open": 0, "matched": 1, "rejected": 1, "closed": 2}


class Rejected(Exception):
    """The writer refused a message; the text is safe to show the sender."""


@dataclass(slots=True)
class Draft:
    room_id: str
    type: str
    sender_id: int | None
    sender_name: str
    text: str
    # SYSTEM only: move the room to this status, and post the message only if that is a change.
    new_status: str | None = None
    future: asyncio.Future[Stored | None] | None = field(default=None, repr=False)


@dataclass(slots=True)
class Stored:
    room_id: str
    id: int
    body: Body


def _sqlite_upsert() -> Any:
    """Write back every changed room in one statement (the SQLite path; MySQL's is in
    mysql_batch): an upsert of rows that exist (they are locked) is an UPDATE that takes many
    rows in one executemany, with one statement compiled once, whatever the batch size."""
    changes = ("last_id", "status", "writer_entered", "applicant_entered", "updated_at")
    stmt = sqlite_insert(Room)
    return stmt.on_conflict_do_update(
        index_elements=[Room.room_id], set_={c: stmt.excluded[c] for c in changes}
    )


_SQLITE_UPSERT = _sqlite_upsert()


@dataclass(slots=True)
class _Plan:
    now: datetime
    outcome: list[Stored | Exception | None] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    changed: set[str] = field(default_factory=set)  # rooms whose row changes
    events: list[Entry | Envelope | str] = field(default_factory=list)


class History:
    """Reads of stored messages, as bodies ready to send."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def body_of(row: Any) -> str:
        return encode_body(
            id=row.id,
            type=row.type,
            room_id=row.room_id,
            sender=row.sender_name,
            message=row.message,
            created_at=row.created_at,
            user_count=row.user_count,
        ).text

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
        if not room_ids:
            return {}
        stmt = select(Room.room_id, Room.last_id).where(Room.room_id.in_(room_ids))
        async with self.db.engine.connect() as conn:
            return {r.room_id: r.last_id for r in (await conn.execute(stmt)).all()}


def _failure(exc: Exception, conn: AsyncConnection | None) -> str:
    """What to do after a failed batch: ``retry`` it (a lock wait timeout or deadlock, rolled
    back), ``reconnect`` and retry (the connection broke), or ``fail`` it. Errors come wrapped
    by SQLAlchemy, or straight from the driver on the MySQL path (``mysql_batch``)."""
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated or (conn is not None and conn.invalidated):
            return "reconnect"
        code = getattr(exc.orig, "args", (None,))[0]
        return "retry" if code in LOCK_ERRORS or "database is locked" in str(exc) else "fail"
    if isinstance(exc, pymysql.err.OperationalError | pymysql.err.InterfaceError | OSError):
        code = exc.args[0] if exc.args else None
        return "retry" if code in LOCK_ERRORS else "reconnect"
    return "fail"


class MessageWriter:
    def __init__(
        self,
        db: Database,
        *,
        presence: Presence,
        hub: Hub,
        publisher: Publisher,
        events_enabled: bool = True,
        batch: int = 500,
        queue_max: int = 20_000,
    ) -> None:
        self.db = db
        self.presence = presence
        self.hub = hub
        self.publisher = publisher
        self.events_enabled = events_enabled
        self.batch = batch
        self.queue_max = queue_max
        self._queue: deque[Draft] = deque()
        self._wake = asyncio.Event()
        self.stored = 0
        self.batches = 0
        # The writer keeps one connection: a pool checkout (with its pre-ping round trip) per
        # batch cost as much as the batch's own statements.
        self._conn: AsyncConnection | None = None
        self._in_doubt: _Plan | None = None  # a batch whose COMMIT may or may not have run

    def busy(self) -> bool:
        return len(self._queue) >= self.queue_max

    def submit(self, draft: Draft) -> asyncio.Future[Stored | None]:
        """Queue a message; the future is its stored form (None if there was nothing to store)."""
        if draft.future is None:
            draft.future = asyncio.get_running_loop().create_future()
        self._queue.append(draft)
        self._wake.set()
        return draft.future

    async def _drop_connection(self, *, invalidate: bool = False) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                if invalidate:
                    await conn.invalidate()
                await conn.close()

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            await self._drop_connection()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                n = min(self.batch, len(self._queue))
                drafts = [self._queue.popleft() for _ in range(n)]
                await self._write(drafts)

    async def _write(self, drafts: list[Draft]) -> None:
        room_ids = sorted({d.room_id for d in drafts})
        # Who is in each room, read before the rooms are locked: the other instances' writers
        # wait on those locks, so nothing that can wait on Redis happens while they are held.
        try:
            present = await asyncio.wait_for(self.presence.snapshot(room_ids), 0.5)
        except Exception:
            present = {r: self.presence.local_members(r) for r in room_ids}
        outcome: list[Stored | Exception | None] = []
        for attempt in range(5):
            try:
                outcome = await self._commit(drafts, room_ids, present)
                break
            except Exception as exc:
                kind = _failure(exc, self._conn)
                if kind == "reconnect":
                    log.warning("message batch: database connection lost (%s); reconnecting", exc)
                    await self._drop_connection(invalidate=True)
                if kind != "fail" and attempt < 4:
                    if kind == "retry":
                        await asyncio.sleep(0.01 * (attempt + 1))
                    continue
                log.exception("message batch failed")
                if kind == "fail":
                    await self._drop_connection()  # its state is unknown now
                outcome = [Rejected("the message could not be stored; try again")] * len(drafts)
                break
        self._in_doubt = None  # this batch is settled, whichever way
        stored = [o for o in outcome if isinstance(o, Stored)]
        self.stored += len(stored)
        self.batches += 1
        for draft, result in zip(drafts, outcome, strict=True):
            fut = draft.future
            if fut is None or fut.done():
                continue
            if isinstance(result, Exception):
                fut.set_exception(result)
                fut.exception()  # a caller that stopped listening must not log a warning
            else:
                fut.set_result(result)
        by_room: dict[str, list[tuple[int, Body]]] = {}
        for item in stored:
            by_room.setdefault(item.room_id, []).append((item.id, item.body))
        for room_id, entries in by_room.items():
            self.hub.on_entries(room_id, entries)

    async def _commit(
        self,
        drafts: Sequence[Draft],
        room_ids: list[str],
        present: dict[str, Members],
    ) -> list[Stored | Exception | None]:
        conn = self._conn
        if conn is None or conn.closed or conn.invalidated:
            conn = self._conn = await self.db.engine.connect()
        if conn.dialect.name == "sqlite":
            plan = await self._commit_sqlalchemy(conn, drafts, room_ids, present)
        else:
            # A retry of a batch whose COMMIT went unanswered (cleared only once answered).
            doubt = self._in_doubt
            committed = doubt is not None and await self._was_committed(conn, doubt)
            self._in_doubt = None
            if doubt is not None and committed:
                plan = doubt
            else:
                plan = await self._commit_mysql(conn, drafts, room_ids, present)
        self.publisher.enqueue(plan.events)
        return plan.outcome

    async def _commit_mysql(
        self,
        conn: AsyncConnection,
        drafts: Sequence[Draft],
        room_ids: list[str],
        present: dict[str, Members],
    ) -> _Plan:
        """Two round trips (see mysql_batch): lock and read the rooms, then write and commit."""
        async with mysql_batch.cursor(conn) as cursor:
            try:
                rooms = await mysql_batch.lock_rooms(cursor, room_ids)
                plan = self._plan(drafts, rooms, present)
                changed = [rooms[r] for r in sorted(plan.changed)]
                query = mysql_batch.write_and_commit(cursor, changed, plan.rows, plan.now)
            except BaseException:
                await mysql_batch.rollback_quietly(cursor.connection)
                raise
            try:
                await mysql_batch.run_batch(cursor, query)
            except (pymysql.err.OperationalError, pymysql.err.InterfaceError, OSError) as exc:
                if not (exc.args and exc.args[0] in LOCK_ERRORS):
                    # The connection went away after the COMMIT may have run: the retry first
                    # looks for this batch's rows, so that it is not stored twice.
                    self._in_doubt = plan
                raise
        return plan

    async def _was_committed(self, conn: AsyncConnection, plan: _Plan) -> bool:
        """Whether a batch whose COMMIT went unanswered is stored: its first row is there, with
        its sender, text and time (had it rolled back, another writer could have taken that id,
        but for a different row)."""
        if not plan.rows:
            return False
        first = plan.rows[0]
        async with mysql_batch.cursor(conn) as cursor:
            found = await mysql_batch.find_message(cursor, first["room_id"], first["id"])
            await mysql_batch.rollback_quietly(cursor.connection)  # end the read's snapshot
        return found == (first["sender_name"], first["message"], first["created_at"])

    async def _commit_sqlalchemy(
        self,
        conn: AsyncConnection,
        drafts: Sequence[Draft],
        room_ids: list[str],
        present: dict[str, Members],
    ) -> _Plan:
        lock = (
            select(*(getattr(Room, c) for c in mysql_batch.ROOM_COLUMNS))
            .where(Room.room_id.in_(room_ids))
            .order_by(Room.room_id)
            .with_for_update()
        )
        async with conn.begin():
            rooms = {r.room_id: r._asdict() for r in (await conn.execute(lock)).all()}
            plan = self._plan(drafts, rooms, present)
            if plan.changed:
                await conn.execute(
                    _SQLITE_UPSERT, [self._room_row(rooms[r], plan.now) for r in plan.changed]
                )
            if plan.rows:
                await conn.execute(insert(Message), plan.rows)
        return plan

    def _plan(
        self, drafts: Sequence[Draft], rooms: dict[str, dict[str, Any]], present: dict[str, Members]
    ) -> _Plan:
        """What the batch stores, given the locked rooms: ids, rows, bodies and events."""
        plan = _Plan(now=utcnow_ms())
        now_iso = iso(plan.now)
        for d in drafts:
            room = rooms.get(d.room_id)
            refusal = self._accept(d, room, plan.changed)
            if refusal is not None:
                plan.outcome.append(None if isinstance(refusal, _Skip) else refusal)
                continue
            assert room is not None
            room["last_id"] += 1
            members = present.get(d.room_id, {})
            row = {
                "room_id": d.room_id,
                "id": room["last_id"],
                "type": d.type,
                "sender_id": d.sender_id,
                "sender_name": d.sender_name if d.type != SYSTEM else SYSTEM_SENDER,
                "message": d.text,
                "user_count": len(members),
                "created_at": plan.now,
            }
            plan.rows.append(row)
            body = encode_body(
                id=row["id"],
                type=d.type,
                room_id=d.room_id,
                sender=row["sender_name"],
                message=d.text,
                created_at=now_iso,
                user_count=len(members),
            )
            plan.outcome.append(Stored(d.room_id, row["id"], body))
            plan.events.append(Entry(d.room_id, row["id"], body.text))
            if self.events_enabled:
                plan.events.append(message_sent_event(d, room, row, members, now_iso))
        return plan

    @staticmethod
    def _accept(d: Draft, room: dict[str, Any] | None, changed: set[str]) -> Exception | None:
        """Why a draft is not stored (an error, or None = nothing to do), or None to store it."""
        if room is None:
            return Rejected(f"room {d.room_id} is unknown")
        if d.type == SYSTEM:
            if d.new_status is not None:
                if STATUS_RANK.get(d.new_status, 0) <= STATUS_RANK.get(room["status"], 0):
                    return _Skip()
                room["status"] = d.new_status
            changed.add(d.room_id)
            return None
        if d.sender_id == room["writer_id"]:
            flag = "writer_entered"
        elif d.sender_id == room["applicant_id"]:
            flag = "applicant_entered"
        else:
            return Rejected("you are not a member of this room")
        if d.type == ENTER:
            if room[flag]:
                return _Skip()
            room[flag] = True
        elif room["status"] in READ_ONLY:
            return Rejected(f"this room is read-only (the board is {room['status']})")
        changed.add(d.room_id)
        return None

    @staticmethod
    def _room_row(room: dict[str, Any], now: datetime) -> dict[str, Any]:
        return {
            "room_id": room["room_id"],
            "board_id": room["board_id"],
            "writer_id": room["writer_id"],
            "writer_name": room["writer_name"],
            "applicant_id": room["applicant_id"],
            "applicant_name": room["applicant_name"],
            "last_id": room["last_id"],
            "status": room["status"],
            "writer_entered": bool(room["writer_entered"]),
            "applicant_entered": bool(room["applicant_entered"]),
            "updated_at": now,
        }


def message_sent_event(
    d: Draft, room: dict[str, Any], row: dict[str, Any], members: Members, created: str
) -> str:
    """The ``chat.message.sent`` envelope as JSON, built directly: this runs once per message,
    and is the same document ``ChatMessageSent(...).envelope().to_json()`` makes (a test checks
    that the schema reads it back)."""
    people = (
        (room["writer_id"], room["writer_name"]),
        (room["applicant_id"], room["applicant_name"]),
    )
    data = {
        "messageId": row["id"],
        "roomId": d.room_id,
        "type": d.type,
        "sender": {"id": d.sender_id or 0, "username": row["sender_name"]},
        "preview": d.text[:120],
        "createdAt": created,
        "recipients": [
            {"id": uid, "username": name, "inRoom": uid in members}
            for uid, name in people
            if uid != d.sender_id
        ],
    }
    envelope = {
        "id": uuid.uuid4().hex,
        "type": ChatMessageSent.TYPE,
        "version": ChatMessageSent.VERSION,
        "occurredAt": created,
        "data": data,
    }
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":"))


class _Skip(Exception):
    """Nothing to store (an ENTER already posted, a status already reached)."""
