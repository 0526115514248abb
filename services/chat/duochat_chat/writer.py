"""The owner's writer: it sequences and stores the messages of the rooms this instance owns.

Every draft that reaches the writer (from this instance's sockets, or forwarded by another
instance) is batched with whatever else is waiting. For each batch the writer:

1. hands back (``reroute``) drafts of rooms this instance no longer owns, in their order (while
   a room has drafts here, the router queues its later ones here too: ``holds``);
2. reads who is in each room (``userCount``, ``inRoom``, and the instances to deliver to);
3. assigns ids in memory from each room's highest stored id, with no row lock: only the owner
   writes a room;
4. inserts the messages and one outbox row holding their events, and commits, in one round
   trip on MySQL (``mysql_batch``);
5. hands the outcome to ``deliver``: receipts, local subscribers, other instances, events.

A stale owner (two instances that both think they own a room for a moment) is fenced by the
``(room_id, id)`` primary key: its insert fails, it reloads those rooms and tries again, and a
room it no longer owns goes to the new owner. A resent message is fenced by the unique
``(room_id, client_message_id, sender_id)``: it settles with the id stored the first time.
A batch that fails for any other reason is split until the message at fault fails alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Protocol

import orjson
import pymysql
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from duochat_chat import mysql_batch
from duochat_chat.drafts import Draft, Outcome, Stored, message_sent_event
from duochat_chat.messages import (
    ENTER_KEY,
    STATUS,
    SYSTEM,
    SYSTEM_SENDER,
    Body,
    encode_body,
    iso,
    params_column,
    utcnow_ms,
)
from duochat_chat.metrics import ChatMetrics
from duochat_chat.models import Message, OutboxBatch, Room
from duochat_chat.presence import Here, Presence
from duochat_chat.ring import Ring
from duochat_chat.rooms import NOTHING_TO_STORE, OwnedRoom, Rejected
from duochat_common.db import Database
from duochat_common.events.bus import cancel_requested

log = logging.getLogger(__name__)
LOCK_ERRORS = (1205, 1213)  # lock wait timeout, deadlock
MAX_ROOMS = 50_000  # owned rooms kept in memory; beyond that the cache starts over
MAX_HOPS = 3  # a draft forwarded this often is written where it is (the key fences it)


class _Fail(Enum):
    RETRY = "retry"  # rolled back by a lock wait or deadlock: run it again
    RECONNECT = "reconnect"  # the connection broke: a new one, then again
    DUPLICATE_KEY = "duplicate_key"  # a resend: settle it with the stored id
    FENCED = "fenced"  # an id is taken: another owner wrote the room
    FAIL = "fail"  # this batch cannot be stored as it is


def _classify(exc: Exception, conn: AsyncConnection | None) -> _Fail:
    """Errors come wrapped by SQLAlchemy (SQLite, loads) or straight from the driver (MySQL)."""
    orig: Any = exc.orig if isinstance(exc, DBAPIError) else exc
    text = str(orig)
    code = orig.args[0] if getattr(orig, "args", None) else None
    if code == 1062 or "UNIQUE constraint failed" in text:
        return (
            _Fail.DUPLICATE_KEY
            if "client_message_id" in text or "uq_chat" in text
            else (_Fail.FENCED)
        )
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated or (conn is not None and conn.invalidated):
            return _Fail.RECONNECT
        return _Fail.RETRY if code in LOCK_ERRORS or "database is locked" in text else _Fail.FAIL
    if isinstance(exc, pymysql.err.OperationalError | pymysql.err.InterfaceError | OSError):
        return _Fail.RETRY if code in LOCK_ERRORS else _Fail.RECONNECT
    return _Fail.FAIL


@dataclass(slots=True)
class _Plan:
    now: datetime
    outcome: list[Outcome] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)  # room -> new status
    events: list[str] = field(default_factory=list)
    refs: dict[str, list[int]] = field(default_factory=dict)  # room -> [first id, last id]
    outbox_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def add(
        self, d: Draft, message_id: int, sender: str, users: int, body: Body, event: str
    ) -> None:
        """One message to store: its row, its outcome, its event, its place in the outbox."""
        self.rows.append(
            {
                "room_id": d.room_id,
                "id": message_id,
                "type": d.type,
                "sender_id": d.sender_id,
                "sender_name": sender,
                "message": d.text,
                "user_count": users,
                "created_at": self.now,
                "client_message_id": d.key,
                "deleted_at": None,
                "audience_id": d.audience,
                "code": d.code,
                "params": params_column(d.params),
            }
        )
        self.outcome.append(Stored(d.room_id, message_id, body))
        self.events.append(event)
        ref = self.refs.get(d.room_id)
        if ref is None:
            self.refs[d.room_id] = [message_id, message_id]
        else:
            ref[1] = message_id


Deliver = Callable[[Sequence[Draft], Sequence[Outcome], dict[str, Here], list[str], str], None]


def _stored_before(
    room: OwnedRoom, d: Draft, planned: dict[tuple[str, int | None, str], int]
) -> int | None:
    """The id of the draft's key if it was stored before, or earlier in this very batch (a
    resend that caught up with its first copy): the draft settles with that message's id."""
    if d.key is None:
        return None
    found = room.keys.get((d.sender_id, d.key))
    return found if found is not None else planned.get((d.room_id, d.sender_id, d.key))


def _body(d: Draft, message_id: int, sender: str, users: int, created_at: str) -> Body:
    """The MESSAGE body that clients get for the draft stored as ``message_id``."""
    return encode_body(
        id=message_id,
        type=d.type,
        room_id=d.room_id,
        sender=sender,
        message=d.text,
        created_at=created_at,
        user_count=users,
        client_message_id=d.key,
        code=d.code,
        params=d.params,
    )


class Relayed(Protocol):
    """Outbox rows whose events are in Redis: a batch deletes them in its transaction."""

    def take_done(self, limit: int = 500) -> list[str]: ...

    def give_back(self, ids: list[str]) -> None: ...


class MessageWriter:
    def __init__(
        self,
        db: Database,
        *,
        reads: Database,
        presence: Presence,
        ring: Ring,
        deliver: Deliver,
        reroute: Callable[[Draft], None],
        batch: int = 500,
        queue_max: int = 20_000,
        relayed: Relayed | None = None,
        metrics: ChatMetrics | None = None,
    ) -> None:
        self.db = db
        self.relayed = relayed
        self.reads = reads
        self.presence = presence
        self.ring = ring
        self.deliver = deliver
        self.reroute = reroute
        self.batch = batch
        self.queue_max = queue_max
        self.rooms: dict[str, OwnedRoom] = {}
        self._queue: deque[Draft] = deque()
        self._rooms_here: dict[str, int] = {}  # room -> its drafts queued or being written
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.stored = 0
        self.batches = 0
        self.fenced = 0
        self.metrics = metrics or ChatMetrics()
        # The writer keeps one connection: a pool checkout (with its pre-ping round trip) per
        # batch cost as much as the batch's own statements.
        self._conn: AsyncConnection | None = None
        self._moved: set[str] = set()  # rooms handed over since the last batch
        ring.listeners.append(self._forget_moved)
        ring.room_listeners.append(self._moved.add)

    def busy(self) -> bool:
        return len(self._queue) >= self.queue_max

    def queued(self) -> int:
        return len(self._queue)

    def submit(self, draft: Draft) -> asyncio.Future[Stored | None]:
        """Queue a draft from this instance; the future is its stored form (None: nothing)."""
        if draft.future is None:
            draft.future = asyncio.get_running_loop().create_future()
        self.enqueue(draft)
        return draft.future

    def holds(self, room_id: str) -> bool:
        """Whether drafts of the room are queued here or being written."""
        return room_id in self._rooms_here

    def enqueue(self, draft: Draft) -> None:
        self._queue.append(draft)
        here = self._rooms_here
        here[draft.room_id] = here.get(draft.room_id, 0) + 1
        self._idle.clear()
        self._wake.set()

    async def idle(self, within: float) -> bool:
        """Wait until the queue is empty and no batch is being written."""
        try:
            async with asyncio.timeout(within):
                await self._idle.wait()
            return True
        except TimeoutError:
            return False

    def _forget_moved(self) -> None:
        """The live instances changed: forget rooms this instance no longer owns (if they come
        back, their state is read again, since another owner may have written them)."""
        self._moved.update(r for r in self.rooms if not self.ring.owns(r))

    def _drop_moved(self) -> None:
        """Between batches (a batch in flight keeps the rooms it planned with)."""
        moved = [r for r in self._moved if self.rooms.pop(r, None) is not None]
        self._moved.clear()
        self.metrics.rooms_moved.inc(len(moved))

    async def _drop_connection(self, *, invalidate: bool = False) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                if invalidate:
                    await conn.invalidate()
                await conn.close()

    async def run(self) -> None:
        try:
            while not cancel_requested():
                await self._wake.wait()
                self._wake.clear()
                while self._queue:
                    n = min(self.batch, len(self._queue))
                    drafts = [self._queue.popleft() for _ in range(n)]
                    try:
                        await self._write(drafts)
                    except Exception:
                        log.exception("message batch failed")
                        self._settle(drafts, [Rejected("the message could not be stored")] * n)
                self._idle.set()
        finally:
            await self._drop_connection()

    def _let_go(self, room_id: str) -> None:
        here = self._rooms_here
        left = here.get(room_id, 0) - 1
        if left > 0:
            here[room_id] = left
        else:
            here.pop(room_id, None)

    async def _write(self, drafts: list[Draft]) -> None:
        # Presence first: it is who is in each room, and it picks each room's owner.
        room_ids = sorted({d.room_id for d in drafts})
        try:
            async with asyncio.timeout(0.5):  # no task: a cached snapshot costs no loop turn
                present = await self.presence.snapshot(room_ids)
        except Exception:
            present = {r: self.presence.local_here(r) for r in room_ids}
        mine = []
        for draft in drafts:
            if self.ring.owns(draft.room_id) or draft.hops >= MAX_HOPS:
                mine.append(draft)
            else:
                self._let_go(draft.room_id)
                self.reroute(draft)
        try:
            if mine:
                await self._write_mine(mine, present)
        finally:
            for draft in mine:
                self._let_go(draft.room_id)

    async def _write_mine(self, mine: list[Draft], present: dict[str, Here]) -> None:
        room_ids = sorted({d.room_id for d in mine})
        self._drop_moved()
        await self._load(room_ids)
        outcome, events, outbox_id = await self._store(mine, present)
        self.batches += 1
        self.metrics.batch_size.observe(len(mine))
        self.stored += sum(1 for o in outcome if isinstance(o, Stored) and o.body is not None)
        self._settle(mine, outcome, present, events, outbox_id)

    def _settle(
        self,
        drafts: Sequence[Draft],
        outcome: Sequence[Outcome],
        present: dict[str, Here] | None = None,
        events: list[str] | None = None,
        outbox_id: str = "",
    ) -> None:
        self.deliver(drafts, outcome, present or {}, events or [], outbox_id)

    async def _load(self, room_ids: list[str], *, again: bool = False) -> None:
        """Read the rooms this batch writes that the owner does not hold yet."""
        if again:
            for room_id in room_ids:
                self.rooms.pop(room_id, None)
        missing = [r for r in room_ids if r not in self.rooms]
        if not missing:
            return
        if len(self.rooms) + len(missing) > MAX_ROOMS:
            self.rooms.clear()
        async with self.reads.engine.connect() as conn:
            rooms = (await conn.execute(select(Room).where(Room.room_id.in_(missing)))).all()
            heads = dict(
                (
                    await conn.execute(
                        select(Message.room_id, func.max(Message.id))
                        .where(Message.room_id.in_(missing))
                        .group_by(Message.room_id)
                    )
                ).all()
            )
            entered = (
                await conn.execute(
                    select(Message.room_id, Message.sender_id, Message.id).where(
                        Message.room_id.in_(missing), Message.client_message_id == ENTER_KEY
                    )
                )
            ).all()
        for row in rooms:
            self.rooms[row.room_id] = OwnedRoom(
                room_id=row.room_id,
                writer_id=row.writer_id,
                writer_name=row.writer_name,
                applicant_id=row.applicant_id,
                applicant_name=row.applicant_name,
                status=row.status,
                head=heads.get(row.room_id) or 0,
            )
        for room_id, sender_id, message_id in entered:
            room = self.rooms.get(room_id)
            if room is not None:
                room.remember(sender_id, ENTER_KEY, message_id)

    async def _store(
        self, drafts: list[Draft], present: dict[str, Here]
    ) -> tuple[list[Outcome], list[str], str]:
        """Store what can be stored; each draft gets its own outcome."""
        settled: dict[int, Outcome] = {}
        todo = list(range(len(drafts)))
        events: list[str] = []
        outbox_id = ""
        for attempt in range(8):
            plan = self._plan([drafts[i] for i in todo], present)
            try:
                if plan.rows or plan.statuses:
                    started = time.perf_counter()
                    await self._commit(plan)
                    self.metrics.commit_seconds.observe(time.perf_counter() - started)
            except Exception as exc:
                kind = _classify(exc, self._conn)
                if kind is _Fail.DUPLICATE_KEY:
                    await self._settle_resends(drafts, todo, settled)
                    todo = [i for i in todo if i not in settled]
                    continue
                if kind is _Fail.FENCED:
                    self.fenced += 1
                    log.info("fenced: another instance wrote these rooms; reloading them")
                    await self._load(sorted({drafts[i].room_id for i in todo}), again=True)
                    continue
                if kind is _Fail.RECONNECT:
                    log.warning("message batch: database connection lost (%s); reconnecting", exc)
                    await self._drop_connection(invalidate=True)
                    continue
                if kind is _Fail.RETRY:
                    await asyncio.sleep(0.01 * (attempt + 1))
                    continue
                await self._drop_connection()  # its state is unknown now
                if len(todo) > 1:  # split: the message at fault fails alone
                    half = len(todo) // 2
                    for part in (todo[:half], todo[half:]):
                        sub, sub_events, _ = await self._store([drafts[i] for i in part], present)
                        settled.update(zip(part, sub, strict=True))
                        events += sub_events
                    todo = []
                    break
                log.exception("message could not be stored")
                settled[todo[0]] = Rejected("the message could not be stored")
                todo = []
                break
            self._applied(plan)
            settled.update(zip(todo, plan.outcome, strict=True))
            events += plan.events
            outbox_id = plan.outbox_id
            todo = []
            break
        for i in todo:
            settled[i] = Rejected("the message could not be stored; try again")
        return [settled[i] for i in range(len(drafts))], events, outbox_id

    async def _settle_resends(
        self, drafts: list[Draft], todo: list[int], settled: dict[int, Outcome]
    ) -> None:
        """Find the drafts whose key is stored already, and settle them with that id."""
        keyed = [drafts[i] for i in todo if drafts[i].key is not None]
        rooms = sorted({d.room_id for d in keyed})
        keys = sorted({d.key for d in keyed if d.key is not None})
        async with self.reads.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(
                        Message.room_id, Message.client_message_id, Message.sender_id, Message.id
                    ).where(Message.room_id.in_(rooms), Message.client_message_id.in_(keys))
                )
            ).all()
        found = {(r.room_id, r.client_message_id, r.sender_id): r.id for r in rows}
        for i in todo:
            d = drafts[i]
            message_id = found.get((d.room_id, d.key, d.sender_id))
            if message_id is not None:
                settled[i] = None if d.key == ENTER_KEY else Stored(d.room_id, message_id, None)
                room = self.rooms.get(d.room_id)
                if room is not None:
                    room.remember(d.sender_id, d.key, message_id)

    def _plan(self, drafts: Sequence[Draft], present: dict[str, Here]) -> _Plan:
        """Ids, rows, bodies and events for the drafts, given the rooms as the owner holds
        them; nothing in ``self.rooms`` changes until the commit succeeded (``_applied``)."""
        plan = _Plan(now=utcnow_ms())
        now_iso = iso(plan.now)
        heads: dict[str, int] = {}
        statuses: dict[str, str] = {}
        planned: dict[tuple[str, int | None, str], int] = {}
        for d in drafts:
            room = self.rooms.get(d.room_id)
            try:
                if room is None:
                    raise Rejected(f"room {d.room_id} is unknown")
                status = statuses.get(d.room_id, room.status)
                refusal = room.refusal(d.type, d.sender_id, d.new_status, status=status)
                if refusal is NOTHING_TO_STORE:
                    plan.outcome.append(None)
                    continue
                if refusal is not None:
                    raise refusal
                if d.type == STATUS and d.new_status is not None:  # no line: only the status
                    statuses[d.room_id] = d.new_status
                    plan.outcome.append(None)
                    continue
                found = _stored_before(room, d, planned)
                if found is not None:
                    plan.outcome.append(
                        None if d.key == ENTER_KEY else Stored(d.room_id, found, None)
                    )
                    continue
                here = present.get(d.room_id) or Here.empty()
                message_id = heads.get(d.room_id, room.head) + 1
                sender = d.sender_name if d.type != SYSTEM else SYSTEM_SENDER
                body = _body(d, message_id, sender, len(here.members), now_iso)
                event = message_sent_event(d, room, message_id, sender, here, now_iso)
            except Rejected as exc:
                plan.outcome.append(exc)
                continue
            except (UnicodeError, ValueError, TypeError):
                # Text that cannot be encoded fails alone (SEND checks it first).
                plan.outcome.append(Rejected("the message is not valid text"))
                continue
            heads[d.room_id] = message_id
            if d.key is not None:
                planned[(d.room_id, d.sender_id, d.key)] = message_id
            if d.new_status is not None:
                statuses[d.room_id] = d.new_status
            plan.add(d, message_id, sender, len(here.members), body, event)
        plan.statuses = statuses
        return plan

    def _applied(self, plan: _Plan) -> None:
        """The plan is committed: the owner's rooms move forward."""
        for row in plan.rows:
            room = self.rooms.get(row["room_id"])
            if room is not None:
                room.head = max(room.head, row["id"])
                room.remember(row["sender_id"], row["client_message_id"], row["id"])
        for room_id, status in plan.statuses.items():
            room = self.rooms.get(room_id)
            if room is not None:
                room.status = status

    async def _commit(self, plan: _Plan) -> None:
        conn = self._conn
        if conn is None or conn.closed or conn.invalidated:
            conn = self._conn = await self.db.engine.connect()
        # The outbox row names the batch's messages; its events are rebuilt from them only
        # if the row is left behind (see ``outbox``).
        outbox = {
            "id": plan.outbox_id,
            "payload": orjson.dumps({"messages": plan.refs}).decode(),
            "created_at": plan.now,
        }
        if conn.dialect.name != "sqlite":
            relayed = self.relayed.take_done() if self.relayed is not None else []
            try:
                async with mysql_batch.cursor(conn) as cursor:
                    query = mysql_batch.write_and_commit(
                        cursor,
                        plan.rows,
                        outbox if plan.events else None,
                        plan.statuses,
                        plan.now,
                        relayed,
                    )
                    await mysql_batch.run_batch(cursor, query)
            except BaseException:
                if self.relayed is not None:
                    self.relayed.give_back(relayed)
                raise
            return
        async with conn.begin():
            if plan.rows:
                await conn.execute(insert(Message), plan.rows)
            if plan.events:
                await conn.execute(insert(OutboxBatch), [outbox])
            for room_id, status in plan.statuses.items():
                await conn.execute(
                    update(Room)
                    .where(Room.room_id == room_id)
                    .values(status=status, updated_at=plan.now)
                )
