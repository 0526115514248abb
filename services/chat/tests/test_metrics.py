"""chat's metrics on two instances: the owner stores and counts, each instance times its own
deliveries (the owner's, and the other's after the Redis hop), forwards are counted where they
leave, and ERROR frames by reason."""

from __future__ import annotations

import asyncio

import httpx
from prometheus_client.parser import text_string_to_metric_families

from duochat_testing.chat import StompError, collect

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(url: str) -> Samples:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{url}/metrics")
    assert response.status_code == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_owner_and_other_instance_each_time_their_deliveries(chat) -> None:
    alice, ta = chat.user()
    bob, tb = chat.user()
    room = await chat.room(alice, bob, owner="chat0")
    owner, other = chat.procs[0].http, chat.procs[1].http
    before = [await scrape(owner), await scrape(other)]

    a = await chat.client(0, ta)  # on the owner
    b = await chat.client(1, tb)  # on the other instance: its sends are forwarded
    await a.subscribe(room)
    await b.subscribe(room)
    for n in range(3):
        for client, who in ((a, "alice"), (b, "bob")):
            receipt = await client.send(room, f"{who} {n}")
            assert receipt is not None
            await asyncio.wait_for(receipt, 10)
    for client in (a, b):
        await collect(client, 6)
    during = [await scrape(owner), await scrape(other)]
    assert value(during[0], "duochat_chat_connections") >= 1
    assert value(during[1], "duochat_chat_subscriptions") >= 1

    def moved(i: int, name: str, **labels: str) -> float:
        return value(during[i], name, **labels) - value(before[i], name, **labels)

    # The owner stored every message (6 and the two ENTER lines); the other stored none.
    assert moved(0, "duochat_chat_messages_stored_total") == 8
    assert moved(1, "duochat_chat_messages_stored_total") == 0
    assert moved(0, "duochat_chat_write_batch_size_sum") == 8
    assert moved(0, "duochat_chat_commit_seconds_count") >= 1
    # bob's three sends (and his ENTER) left chat1 for the owner.
    assert moved(1, "duochat_chat_forwarded_total") >= 3
    # Each instance delivered to its own subscription: 6 messages and the ENTERs after it.
    assert moved(0, "duochat_chat_messages_delivered_total") >= 6
    assert moved(1, "duochat_chat_messages_delivered_total") >= 6
    # ...and timed it: the owner as it stored, the other after the Redis hop.
    count = "duochat_chat_send_to_deliver_seconds_count"
    assert moved(0, count, hop="owner") >= 1
    assert moved(1, count, hop="stream") >= 1
    assert moved(1, count, hop="owner") == 0
    slowest = "duochat_chat_send_to_deliver_seconds_bucket"
    assert value(during[1], slowest, hop="stream", le="10.0") == value(
        during[1], count, hop="stream"
    )


async def test_error_frames_are_counted_by_reason(chat) -> None:
    alice, ta = chat.user()
    bob, _ = chat.user()
    stranger, ts = chat.user()
    room = await chat.room(alice, bob)
    url = chat.procs[0].http
    before = await scrape(url)

    bad = await chat.client(0, ta)
    await bad.send_frame(
        "SEND", {"destination": "/pub/nowhere", "receipt": "r1"}, b'{"roomId":"x"}'
    )
    await asyncio.wait_for(bad.closed.wait(), 10)
    outsider = await chat.client(0, ts)
    try:
        await outsider.subscribe(room)
    except StompError:
        pass
    await asyncio.wait_for(outsider.closed.wait(), 10)
    after = await scrape(url)
    errors = "duochat_chat_errors_total"
    assert value(after, errors, reason="invalid") - value(before, errors, reason="invalid") == 1
    assert value(after, errors, reason="denied") - value(before, errors, reason="denied") == 1
    assert value(after, errors, reason="internal") == 0
    assert stranger.id != alice.id
