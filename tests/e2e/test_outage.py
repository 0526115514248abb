"""Sending that is never lost or reordered, across a real network cut (issue 15: 2).

angrydaddy (a phone) reaches the server through a TCP proxy the test cuts: every connection of
his browser ends, new ones are refused, and he keeps typing. happydaddy (a desktop) is connected
directly and sees what arrives.
"""

from __future__ import annotations

import json

from playwright.sync_api import expect

from .helpers import User, pair_in_room
from .seed import auth, login

# A cut network shows up in the console as failed requests and sockets: expected here.
NETWORK_ERRORS = r"net::ERR_|WebSocket connection to|Failed to fetch"


def type_and_enter(user: User, text: str) -> None:
    box = user.tid("message-input")
    box.fill(text)
    box.press("Enter")
    expect(box).to_have_value("")


def client_key(frame: str) -> str:
    return json.loads(frame.split("\n\n", 1)[1].rstrip("\x00"))["clientMessageId"]


def stored(api, room_id: str, token: str) -> list[dict]:
    page = api.get(f"/chat/rooms/{room_id}/messages", headers=auth(token)).json()
    return [m for m in page["items"] if m["type"] == "TALK"]


def test_messages_typed_in_an_outage_go_out_by_themselves_in_order(open_user, netcut, api):
    proxy = netcut()
    happy = open_user("happydaddy", "1234")
    angry = open_user("angrydaddy", "1234", phone=True, via=proxy.url)
    angry.allow_console(NETWORK_ERRORS)
    room_id = pair_in_room(happy, angry)
    angry.send("before the cut")

    # The network goes: the app says so at once, and the input keeps taking text.
    proxy.cut()
    bar = angry.tid("reconnecting-bar")
    expect(bar).to_be_visible()
    expect(bar).to_contain_text("Reconnecting")
    type_and_enter(angry, "a, typed in the tunnel")
    happy.send("x, while he was away")
    type_and_enter(angry, "b, typed a bit later")
    queued = angry.page.locator('[data-testid="line-talk"][data-status="queued"]')
    expect(queued).to_have_count(2)
    expect(angry.tid("reconnecting-waiting")).to_have_text("2 messages wait to be sent.")
    key_a = angry.my_line("a, typed in the tunnel").get_attribute("data-client-id")
    assert key_a and len(key_a) >= 16
    angry.shot("50-outage-queued-phone")
    angry.axe("room-reconnecting-en-light-phone")

    # The network comes back: nobody presses anything, and both go out, in the order typed.
    proxy.restore()
    expected = [
        "before the cut",
        "x, while he was away",
        "a, typed in the tunnel",
        "b, typed a bit later",
    ]
    for person in (happy, angry):
        expect(person.page.get_by_test_id("line-text")).to_have_text(expected, timeout=20_000)
    expect(queued).to_have_count(0)
    expect(bar).to_have_count(0)
    for text in expected[2:]:
        expect(angry.my_line(text)).to_have_attribute("data-status", "delivered")
    happy.shot("51-outage-after-desktop")
    # Stored once each, in that order, with the key the phone made while offline.
    talk = stored(api, room_id, login(api, "happydaddy", "1234"))
    assert [m["message"] for m in talk] == expected
    assert talk[2]["clientMessageId"] == key_a

    # Stored, but the receipt is lost with the connection: the resend after the cut carries the
    # same clientMessageId, and the server keeps one copy.
    proxy.hold_replies_after("only once, please")
    type_and_enter(angry, "only once, please")
    assert proxy.held.wait(10)
    expect(happy.page.get_by_test_id("line-text").last).to_have_text("only once, please")
    mine = angry.my_line("only once, please")
    expect(mine).to_have_attribute("data-status", "pending")
    proxy.cut()
    expect(bar).to_be_visible()
    proxy.restore()
    expect(mine).to_have_attribute("data-status", "delivered", timeout=20_000)
    expect(angry.page.get_by_test_id("line-text")).to_have_text([*expected, "only once, please"])
    expect(happy.page.get_by_test_id("line-text")).to_have_text([*expected, "only once, please"])
    # Sent again after the cut (unless the replay on the new connection settled it first),
    # always as the same message.
    sends = proxy.stomp_sends("only once, please")
    assert 1 <= len(sends) <= 2 and len({client_key(f) for f in sends}) == 1, sends
    assert [m["message"] for m in stored(api, room_id, login(api, "angrydaddy", "1234"))] == [
        *expected,
        "only once, please",
    ]


def test_waiting_messages_survive_a_reload(open_user, netcut):
    """The chat service is down but the page loads: what waits is still there after a reload,
    and goes out once chat is back."""
    proxy = netcut()
    happy = open_user("happydaddy", "1234", phone=True)
    angry = open_user("angrydaddy", "1234", via=proxy.url)
    angry.allow_console(NETWORK_ERRORS)
    pair_in_room(happy, angry)

    proxy.cut_websockets()
    expect(angry.tid("reconnecting-bar")).to_be_visible()
    type_and_enter(angry, "kept across a reload")
    key = angry.my_line("kept across a reload").get_attribute("data-client-id")
    angry.page.reload()
    line = angry.my_line("kept across a reload")
    expect(line).to_have_attribute("data-status", "queued")
    assert line.get_attribute("data-client-id") == key
    proxy.restore()
    expect(line).to_have_attribute("data-status", "delivered", timeout=20_000)
    expect(happy.page.get_by_test_id("line-text")).to_have_text(["kept across a reload"])
    assert [client_key(f) for f in proxy.stomp_sends("kept across a reload")] == [key]


def test_the_browser_coming_online_reconnects_at_once(open_user, netcut):
    """Backoff with jitter while the network is away; the `online` event cuts the wait short."""
    proxy = netcut()
    angry = open_user("angrydaddy", "1234", via=proxy.url)
    angry.allow_console(NETWORK_ERRORS)
    expect(angry.tid("stomp-connected")).to_be_visible()

    proxy.cut()
    angry.context.set_offline(True)
    bar = angry.tid("reconnecting-bar")
    expect(bar).to_be_visible()
    # Each failed attempt waits longer (0.25-0.5 s, 0.5-1 s, 1-2 s, 2-4 s, ...): wait until the
    # next one is at least 3 s away.
    delays: list[int] = []
    for _ in range(40):
        delay = int(bar.get_attribute("data-next-delay") or 0)
        if not delays or delays[-1] != delay:
            delays.append(delay)
        if delay >= 3000:
            break
        angry.page.wait_for_timeout(250)
    assert delays[-1] >= 3000, delays
    expect(angry.tid("reconnecting-in")).to_be_visible()
    angry.shot("52-reconnecting-backoff")

    proxy.restore()
    angry.context.set_offline(False)
    # Well before the 3 s the backoff still had to run.
    expect(angry.tid("stomp-connected")).to_be_visible(timeout=1500)
    expect(bar).to_have_count(0)
