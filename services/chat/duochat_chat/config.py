"""chat's settings."""

from __future__ import annotations

from duochat_chat.stomp import Limits
from duochat_common.settings import ServiceSettings


class Settings(ServiceSettings):
    database_url: str = "sqlite:///./data/chat.db"
    # Where chat asks boards about a room it has not seen yet.
    boards_url: str = "http://127.0.0.1:8000"
    boards_timeout_s: float = 3.0

    # STOMP limits, each answered by an ERROR frame.
    max_frame_bytes: int = 16 * 1024
    max_message_chars: int = 1000
    # SENDs per second, per socket and per user across all their sockets and instances.
    sends_per_second: float = 20.0
    send_burst: int = 40
    max_subscriptions: int = 200
    # One user's sockets, counted across instances; a CONNECT beyond this gets an ERROR.
    max_sockets_per_user: int = 20
    # SUBSCRIBE with ``since`` replays at most this many messages (older ones: REST pages).
    max_replay: int = 500
    connect_timeout_s: float = 10.0
    heartbeat_send_ms: int = 10_000
    heartbeat_receive_ms: int = 10_000

    # Presence entries expire this long after an instance stops refreshing them.
    presence_ttl_s: float = 15.0
    # The writer stores at most this many messages per transaction.
    write_batch: int = 500
    # SENDs waiting for the writer beyond this get an ERROR (back-pressure, not a silent drop).
    write_queue_max: int = 20_000
    # Every tracked room's last id is compared with the database this often, so a message
    # whose fan-out entry was lost (instance killed, Redis down) still reaches subscribers.
    sweep_interval_s: float = 1.0
    # Live instances refresh their entry this often; one silent for ring_ttl_s is gone, and
    # its rooms move to the others.
    ring_interval_s: float = 0.5
    ring_ttl_s: float = 3.0
    # A SEND forwarded to a room's owner and not answered in this long is sent again (safe:
    # every SEND carries an idempotency key).
    forward_resend_s: float = 5.0
    # Outbox rows (events) still there after this long were left by an instance that died
    # or lost Redis, and are relayed by whichever instance sweeps first.
    outbox_stale_s: float = 10.0
    outbox_sweep_s: float = 5.0

    def stomp_limits(self) -> Limits:
        return Limits(
            max_frame_bytes=self.max_frame_bytes,
            max_subscriptions=self.max_subscriptions,
            sends_per_second=self.sends_per_second,
            send_burst=self.send_burst,
            connect_timeout_s=self.connect_timeout_s,
            heartbeat_send_ms=self.heartbeat_send_ms,
            heartbeat_receive_ms=self.heartbeat_receive_ms,
        )
