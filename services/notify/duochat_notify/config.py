"""Notify's settings: the shared ones plus tickets, streams, limits and pruning."""

from __future__ import annotations

from pydantic import Field

from duochat_common.settings import ServiceSettings


class Settings(ServiceSettings):
    """``DUOCHAT_*`` environment variables; every default suits the embedded mode."""

    # Tickets that open a stream: single use, bound to the user who asked for them, and only so
    # many a minute per user.
    ticket_ttl_seconds: int = Field(default=45, le=300)
    tickets_per_minute: int = Field(default=30, ge=1)
    # The SSE keep-alive comment interval. Proxies and the ALB close idle streams after 60 s.
    keepalive_seconds: float = 15.0
    # Open streams per user across all instances; the next one gets 429.
    max_streams_per_user: int = 8
    # A stream holds its slot this long unless refreshed, so a dead instance's slots free up.
    stream_slot_ttl_seconds: int = 60
    # Events a slow stream may have queued before it is closed (the client reconnects and
    # replays with Last-Event-ID, so nothing is lost).
    stream_queue_size: int = 1000
    # Per-user delivery streams in Redis: how much history a reconnect can replay, and how long
    # an idle user's stream is kept.
    user_stream_maxlen: int = 1000
    user_stream_ttl_seconds: int = 7 * 86400
    # How long an instance's fan-out blocks in XREAD on its inbox; below redis-py's 5 s socket
    # timeout, or the read times out instead of returning empty.
    delivery_block_ms: int = 2000
    # Entries an instance's inbox keeps (a fan-out reads them within milliseconds; this only bounds
    # the inbox of an instance that died, which also expires an hour after its last read).
    inbox_maxlen: int = 10_000
    # A ``message`` alarm for a recipient whose presence chat could not read (``presenceKnown:
    # false``) is stored at once but pushed live only after this long, and only if still unread:
    # a recipient who was in the room on another chat instance reads it first (README, "Presence
    # unknown").
    presence_hold_seconds: float = 10.0

    # Event consumption. An instance with ``consume_events`` off only serves streams and REST.
    consume_events: bool = True
    consumer_block_ms: int = 2000
    # After a read that found less than a full batch, the next read waits this long: a steady
    # trickle of events is handled a few at a time instead of one per three Redis round trips
    # (at most this much later; an event after a quiet spell is read at once).
    consumer_linger_ms: int = 5
    consumer_claim_idle_ms: int = 30_000

    preview_max_chars: int = 100

    # Read notifications older than this are deleted by a periodic task on every instance.
    prune_read_after_days: float = 30.0
    prune_interval_seconds: float = 3600.0
