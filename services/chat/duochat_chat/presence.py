"""Who is in which room right now, shared by every instance through Redis.

Each room is a sorted set of ``instance|userId|username`` scored by an expiry time. An instance
adds its users when they subscribe and refreshes them every ``ttl/3``; when it dies, its
entries simply expire. A user counts as present while any instance holds a fresh entry, and the
instances that hold entries are where the room's messages are delivered. Snapshots are cached
for a moment, and dropped whenever this instance sees the room's presence change (its own joins
and leaves, the ENTER/QUIT frames other instances send, and their notes that they watch it).
The instances last seen in each room (``nodes_of``, of any age) choose the room's owner (see
``ring``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from duochat_common.events.bus import cancel_requested

log = logging.getLogger(__name__)
Members = dict[int, str]  # user id -> username


@dataclass(frozen=True, slots=True)
class Here:
    """Who is in a room, and on which instances."""

    members: Members
    nodes: frozenset[str]
    # False when Redis could not be read: only this instance's own sockets are known, and a
    # member counted away may be in the room on another instance.
    known: bool = True

    @classmethod
    def empty(cls, *, known: bool = True) -> Here:
        return cls({}, frozenset(), known)


class Presence:
    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        key: Callable[[str], str],
        instance: str,
        ttl_s: float = 15.0,
        cache_s: float = 1.0,
    ) -> None:
        self.redis = redis
        self._key = key
        self.instance = instance.replace("|", "_")
        self.ttl_ms = int(ttl_s * 1000)
        self.cache_s = cache_s
        self.local: dict[tuple[str, int], int] = {}  # (room, user id) -> local subscriptions
        self.by_room: dict[str, set[int]] = {}  # room -> users with local subscriptions
        self.names: dict[int, str] = {}
        self._cache: dict[str, tuple[float, Here]] = {}
        self._nodes: dict[str, frozenset[str]] = {}  # room -> the instances last seen there
        # A refresh and a leave must not cross: a refresh that read the local entries before a
        # leave, and whose ZADD reached Redis after the leave's ZREM, would bring the departed
        # user back for a whole TTL (no QUIT, and no alarm for what is sent to them meanwhile).
        self._writing = asyncio.Lock()

    def nodes_of(self, room_id: str) -> frozenset[str] | None:
        """The instances last seen holding the room's subscribers (None: never looked)."""
        return self._nodes.get(room_id)

    def saw(self, room_id: str, nodes: frozenset[str]) -> None:
        """Remember where the room's subscribers are; the set is replaced only if it changed,
        since the ring compares it by identity."""
        if self._nodes.get(room_id) != nodes:
            if len(self._nodes) > 200_000:
                self._nodes.clear()
            self._nodes[room_id] = nodes

    def saw_node(self, room_id: str, node: str) -> None:
        """Another instance said it has a subscriber in the room now."""
        self.saw(room_id, self._nodes.get(room_id, frozenset()) | {node})

    def key(self, room_id: str) -> str:
        return self._key(f"chat:presence:{room_id}")

    def _member(self, user_id: int) -> str:
        return f"{self.instance}|{user_id}|{self.names.get(user_id, '')}"

    def invalidate(self, room_id: str) -> None:
        self._cache.pop(room_id, None)

    def local_members(self, room_id: str) -> Members:
        return {u: self.names.get(u, "") for u in self.by_room.get(room_id, ())}

    def local_here(self, room_id: str) -> Here:
        """This instance's own view (when Redis cannot be read)."""
        members = self.local_members(room_id)
        return Here(members, frozenset([self.instance]) if members else frozenset(), False)

    async def join(self, room_id: str, user_id: int, username: str) -> bool:
        """Count one more local subscription; True if the user was in the room nowhere before."""
        self.names[user_id] = username
        count = self.local.get((room_id, user_id), 0)
        self.local[(room_id, user_id)] = count + 1
        if count:
            return False
        self.by_room.setdefault(room_id, set()).add(user_id)
        self.invalidate(room_id)
        key = self.key(room_id)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.zrangebyscore(key, int(time.time() * 1000), "+inf")
                pipe.zadd(key, {self._member(user_id): self._expiry()})
                pipe.pexpire(key, self.ttl_ms * 2)
                before, _, _ = await pipe.execute()
        except RedisError:
            log.warning("presence join not recorded (redis unavailable)")
            return True
        mine = self._member(user_id)
        uid = str(user_id)
        self.saw(room_id, frozenset([self.instance, *(e.partition("|")[0] for e in before)]))
        return not any(e != mine and e.split("|", 2)[1:2] == [uid] for e in before)

    async def leave(self, room_id: str, user_id: int) -> bool:
        """Count one less local subscription; True if the user is now in the room nowhere."""
        count = self.local.get((room_id, user_id), 0)
        if count > 1:
            self.local[(room_id, user_id)] = count - 1
            return False
        self.local.pop((room_id, user_id), None)
        users = self.by_room.get(room_id)
        if users is not None:
            users.discard(user_id)
            if not users:
                del self.by_room[room_id]
                self.saw(room_id, self._nodes.get(room_id, frozenset()) - {self.instance})
        self.invalidate(room_id)
        try:
            async with self._writing:
                await self.redis.zrem(self.key(room_id), self._member(user_id))
        except RedisError:
            log.warning("presence leave not recorded (redis unavailable)")
        return user_id not in await self.members(room_id)

    def _expiry(self) -> int:
        return int(time.time() * 1000) + self.ttl_ms

    async def members(self, room_id: str) -> Members:
        return (await self.snapshot([room_id]))[room_id].members

    async def snapshot(self, room_ids: Iterable[str]) -> dict[str, Here]:
        """Present users and their instances per room. Falls back to this instance's own view
        if Redis is down."""
        now = time.monotonic()
        out: dict[str, Here] = {}
        missing: list[str] = []
        for room_id in room_ids:
            hit = self._cache.get(room_id)
            if hit is not None and now - hit[0] < self.cache_s:
                out[room_id] = hit[1]
            else:
                missing.append(room_id)
        if not missing:
            return out
        try:
            floor = int(time.time() * 1000)
            async with self.redis.pipeline(transaction=False) as pipe:
                for room_id in missing:
                    pipe.zrangebyscore(self.key(room_id), floor, "+inf")
                replies = await pipe.execute()
        except RedisError:
            for room_id in missing:
                out[room_id] = self.local_here(room_id)
            return out
        for room_id, entries in zip(missing, replies, strict=True):
            members: Members = {}
            nodes: set[str] = set()
            for entry in entries:
                node, _, rest = entry.partition("|")
                uid, _, name = rest.partition("|")
                if uid.isdigit():
                    members[int(uid)] = name
                    nodes.add(node)
            local = self.local_members(room_id)
            if local:
                members.update(local)
                nodes.add(self.instance)
            here = Here(members, frozenset(nodes))
            self._cache[room_id] = (now, here)
            self.saw(room_id, here.nodes)
            out[room_id] = here
        return out

    async def refresh(self) -> None:
        """Re-announce every local entry (also restores them after a Redis restart)."""
        async with self._writing:
            await self._refresh()

    async def _refresh(self) -> None:
        if not self.local:
            return
        expiry = self._expiry()
        floor = int(time.time() * 1000)
        rooms: dict[str, dict[str, int]] = {}
        for room_id, user_id in list(self.local):
            rooms.setdefault(room_id, {})[self._member(user_id)] = expiry
        items = list(rooms.items())
        for start in range(0, len(items), 500):
            async with self.redis.pipeline(transaction=False) as pipe:
                for room_id, mapping in items[start : start + 500]:
                    key = self.key(room_id)
                    pipe.zadd(key, mapping)
                    pipe.zremrangebyscore(key, 0, floor)
                    pipe.pexpire(key, self.ttl_ms * 2)
                await pipe.execute()

    async def run(self) -> None:
        while not cancel_requested():
            await asyncio.sleep(self.ttl_ms / 3000)
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("presence refresh failed; retrying", exc_info=False)
