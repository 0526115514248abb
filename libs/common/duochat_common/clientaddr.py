"""The caller's address, trusting ``X-Forwarded-For`` only from configured proxies.

A client that reaches a service directly (the embedded server, ``make services`` ports) can
write any ``X-Forwarded-For`` it likes, so the header counts only when the connection comes from
a proxy we run (``DUOCHAT_TRUSTED_PROXIES``: nginx's address in compose, the ALB's subnets on
AWS). Then the hops are read from the right, skipping our own proxies: the first hop that is not
one of them is the address that the last trusted proxy saw.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_ADDRESS_CHARS = 64


@lru_cache(maxsize=16)
def parse_networks(spec: str) -> tuple[Network, ...]:
    """``"10.0.0.0/16, 127.0.0.1"`` as networks; raises ``ValueError`` on a bad entry."""
    return tuple(
        ipaddress.ip_network(part.strip(), strict=False) for part in spec.split(",") if part.strip()
    )


def _trusted(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_address(peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The address to account a request to: the peer, or the hop a trusted proxy vouches for."""
    address = peer or "unknown"
    if not trusted or not forwarded_for or not _trusted(address, trusted):
        return address[:MAX_ADDRESS_CHARS]
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        address = hop
        if not _trusted(hop, trusted):
            break
    return address[:MAX_ADDRESS_CHARS]
