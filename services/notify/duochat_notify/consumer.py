"""A consumer that hands a whole read batch to one handler call.

The shared ``Consumer`` runs its handler once per event, and notify's handler costs a database
transaction and two Redis round trips, so one at a time they bound how many messages a second
notify keeps up with. Here a batch of events becomes one transaction and one push. If the
batch handler fails, the batch goes through the shared per-event path, with its retries and
dead-lettering, so one poison event still cannot block the group. Handlers are idempotent, so
re-running the events of a failed batch one by one stores and pushes nothing twice. An entry
may hold several events (``events``, see ``duochat_common.events.bus``): all join the batch.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pydantic import ValidationError

from duochat_common.events import Consumer, Envelope
from duochat_common.events.bus import entry_envelopes

log = logging.getLogger(__name__)

BatchHandler = Callable[[Sequence[Envelope]], Awaitable[None]]


class BatchConsumer(Consumer):
    def __init__(self, *args: Any, batch_handler: BatchHandler, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batch_handler = batch_handler

    async def _process(
        self, entries: list[tuple[str, dict[str, Any]]], *, fresh: bool = False
    ) -> int:
        parsed: list[Envelope] = []
        for _entry_id, fields in entries:
            try:
                parsed += entry_envelopes(fields)[2]
            except (ValidationError, ValueError, json.JSONDecodeError):
                # An unparseable entry is dead-lettered by the shared path.
                return await super()._process(entries, fresh=fresh)
        if len(parsed) < 2:
            return await super()._process(entries, fresh=fresh)
        done = await self.already_done(parsed)
        todo: dict[str, Envelope] = {}
        for envelope, already in zip(parsed, done, strict=True):
            if not already:
                todo.setdefault(envelope.id, envelope)
        try:
            with self.span(list(todo.values())):
                await self.batch_handler(list(todo.values()))
        except Exception:
            log.warning(
                "batch handler failed; handling the events one by one",
                exc_info=True,
                extra={"fields": {"stream": self.stream, "events": len(todo)}},
            )
            return await super()._process(entries, fresh=fresh)
        ids = [entry_id for entry_id, _ in entries]
        async with self.redis.pipeline(transaction=False) as pipe:
            self.mark_done(pipe, list(todo))
            pipe.xack(self.stream, self.group, *ids)
            if not fresh:
                pipe.hdel(self._attempts_key, *ids)
            await pipe.execute()
        return len(entries)
