"""The live chat instances and which one owns each room.

Each instance keeps an entry in one sorted set (``chat:instances``, member = instance id, score
= when the entry expires) and refreshes it every ``interval``; it reads the set back at the same
time. A room's owner is chosen by rendezvous hashing (highest hash of (instance, room)) among
the live instances that hold the room's subscribers, as this instance last saw the room's
presence (``nodes_of``); among all live instances when none does. So the owner of a room whose
members are connected is one of their instances: a message takes one hop to the other member's
instance (two when the sender is not the owner) instead of up to three through a third
instance, whatever the number of instances. Every instance that sees the same live set and the
same presence picks the same owner; when an instance joins or goes, only the rooms it wins or
held move. An instance that drains leaves the set at once and stops counting itself; one that
dies is dropped when its entry expires (``ttl``).

Instances may disagree for a moment after a change (a member entering or leaving moves the room
when its instances change). That is safe: a SEND that reaches a non-owner is forwarded, and a
stale owner's insert is fenced by the database (see ``writer``). A sender's messages keep their
order through a move, even when several are in flight across it (see ``forwarding``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from duochat_common.events.bus import cancel_requested

log = logging.getLogger(__name__)


def _score(instance: str, room_id: str) -> int:
    digest = hashlib.blake2b(f"{instance}\x00{room_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def rendezvous(instances: tuple[str, ...], room_id: str) -> str:
    """The instance that owns ``room_id`` among ``instances`` (highest random weight)."""
    return max(instances, key=lambda instance: _score(instance, room_id))


class Ring:
    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        key: str,
        instance: str,
        interval_s: float = 0.5,
        ttl_s: float = 3.0,
    ) -> None:
        self.redis = redis
        self.key = key
        self.instance = instance
        self.interval_s = interval_s
        self.ttl_ms = int(ttl_s * 1000)
        self.draining = False
        self.live: tuple[str, ...] = (instance,)
        # room -> (the nodes it was chosen among, its owner); the nodes are compared by identity
        # (presence replaces a room's set when it changes), so a hit costs two dict reads.
        self._owners: dict[str, tuple[frozenset[str] | None, str]] = {}
        self.nodes_of: Callable[[str], frozenset[str] | None] = lambda room_id: None
        self.listeners: list[Callable[[], None]] = []  # told when the live set changes
        self.room_listeners: list[Callable[[str], None]] = []  # told when a room leaves us
        self.moves = 0  # how many times the live set changed

    def owner(self, room_id: str) -> str:
        nodes = self.nodes_of(room_id)
        cached = self._owners.get(room_id)
        if cached is not None and cached[0] is nodes:
            return cached[1]
        candidates = tuple(i for i in self.live if i in nodes) if nodes else ()
        owner = rendezvous(candidates or self.live, room_id)
        if len(self._owners) > 200_000:
            self._owners.clear()
        self._owners[room_id] = (nodes, owner)
        if cached is not None and cached[1] == self.instance and owner != self.instance:
            for listener in self.room_listeners:
                listener(room_id)
        return owner

    def owns(self, room_id: str) -> bool:
        return self.owner(room_id) == self.instance

    def is_live(self, instance: str) -> bool:
        return instance in self.live

    def _set_live(self, members: list[str]) -> None:
        live = set(members)
        if self.draining:
            live.discard(self.instance)
        else:
            live.add(self.instance)
        if not live:  # the last instance draining still owns everything it is asked to write
            live.add(self.instance)
        ordered = tuple(sorted(live))
        if ordered != self.live:
            self.live = ordered
            self._owners.clear()
            self.moves += 1
            for listener in self.listeners:
                listener()

    async def beat(self) -> None:
        """Refresh this instance's entry and read the live set."""
        now = int(time.time() * 1000)
        async with self.redis.pipeline(transaction=False) as pipe:
            if not self.draining:
                pipe.zadd(self.key, {self.instance: now + self.ttl_ms})
            pipe.zremrangebyscore(self.key, 0, now)
            pipe.zrangebyscore(self.key, now, "+inf")
            replies = await pipe.execute()
        self._set_live([str(m) for m in replies[-1]])

    async def leave(self) -> None:
        """Stop owning rooms: out of the set now, so the others take them on their next beat."""
        self.draining = True
        self._set_live([i for i in self.live if i != self.instance])
        try:
            await self.redis.zrem(self.key, self.instance)
        except RedisError:
            log.warning("could not leave the instance set (redis unavailable)")

    async def run(self) -> None:
        while not cancel_requested():
            try:
                await self.beat()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError):
                # Keep the last view: rooms stay where they were while Redis is away.
                log.warning("instance heartbeat failed (redis unavailable); retrying")
            await asyncio.sleep(self.interval_s)
