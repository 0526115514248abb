"""A small STOMP 1.2 server-side protocol layer: frames and the connection state machine.

It knows nothing of rooms, users or storage; ``duochat_chat.session`` plugs it into them.
"""

from duochat_chat.stomp.connection import (
    Connect,
    Disconnect,
    Event,
    Failed,
    Limits,
    Receipt,
    Send,
    State,
    StompConnection,
    Subscribe,
    Unsubscribe,
)
from duochat_chat.stomp.frames import Frame, FrameParser, ProtocolError, encode

__all__ = [
    "Connect",
    "Disconnect",
    "Event",
    "Failed",
    "Frame",
    "FrameParser",
    "Limits",
    "ProtocolError",
    "Receipt",
    "Send",
    "State",
    "StompConnection",
    "Subscribe",
    "Unsubscribe",
    "encode",
]
