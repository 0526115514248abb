"""X-Forwarded-For counts only from a trusted proxy (issue 12, finding 2)."""

from __future__ import annotations

import pytest

from duochat_common.clientaddr import client_address, parse_networks
from duochat_common.settings import ServiceSettings

PROXIES = parse_networks("10.0.0.0/16, 127.0.0.1")


def test_nothing_is_trusted_by_default() -> None:
    assert ServiceSettings().trusted_networks() == ()
    assert client_address("198.51.100.7", "203.0.113.1", ()) == "198.51.100.7"


def test_a_direct_client_cannot_pick_its_address() -> None:
    assert client_address("198.51.100.7", "203.0.113.1", PROXIES) == "198.51.100.7"


def test_the_hop_our_proxy_appended_counts() -> None:
    assert client_address("10.0.3.4", "1.2.3.4, 203.0.113.9", PROXIES) == "203.0.113.9"


def test_chained_proxies_are_skipped_from_the_right() -> None:
    hops = "1.2.3.4, 203.0.113.9, 10.0.9.9"
    assert client_address("127.0.0.1", hops, PROXIES) == "203.0.113.9"


def test_garbage_in_the_header_is_just_an_address() -> None:
    assert client_address("10.0.0.1", "not-an-ip", PROXIES) == "not-an-ip"
    assert len(client_address("10.0.0.1", "x" * 500, PROXIES)) == 64
    assert client_address(None, None, PROXIES) == "unknown"


def test_a_bad_network_fails_at_start_up() -> None:
    with pytest.raises(ValueError, match="trusted_proxies"):
        ServiceSettings(trusted_proxies="10.0.0.0/33")
