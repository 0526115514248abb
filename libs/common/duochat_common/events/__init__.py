"""Events between services on Redis Streams: envelope, schemas, publisher, consumer."""

from duochat_common.events.bus import Consumer, EventBus, Handler
from duochat_common.events.envelope import Envelope

__all__ = ["Consumer", "Envelope", "EventBus", "Handler"]
