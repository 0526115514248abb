"""The room survives a dropped connection: nothing missed, nothing doubled, failed sends retry."""

from __future__ import annotations

from playwright.sync_api import expect

from .gate import StompGate
from .helpers import pair_in_room


def test_reconnect_replays_what_was_missed_once(open_user):
    happy = open_user("happydaddy", "1234")
    angry = open_user("angrydaddy", "1234", sign_in=False)
    gate = StompGate(angry.page)
    angry.sign_in()
    pair_in_room(happy, angry)

    happy.send("before the drop")
    angry.send("me too")

    gate.refuse = True
    gate.cut()
    expect(angry.tid("stomp-connected")).to_have_count(0)
    missed = ["one", "two", "three"]
    for text in missed:
        happy.send(text)
    angry.shot("20-reconnecting")
    gate.refuse = False

    expect(angry.tid("stomp-connected")).to_be_visible(timeout=15_000)
    expected = ["before the drop", "me too", *missed]
    expect(angry.page.get_by_test_id("line-text")).to_have_text(expected)
    # And it stays that way: no late duplicates from the replay.
    angry.page.wait_for_timeout(500)
    assert angry.talk_texts() == expected
    assert gate.connections >= 2

    angry.send("back again")
    expect(happy.page.get_by_test_id("line-text")).to_have_text([*expected, "back again"])


def test_unconfirmed_message_fails_and_retries(open_user):
    happy = open_user("happydaddy", "1234")
    angry = open_user("angrydaddy", "1234", sign_in=False)
    gate = StompGate(angry.page)
    angry.sign_in()
    pair_in_room(happy, angry)

    gate.drop_sends = True
    box = angry.tid("message-input")
    box.fill("lost in the tunnel")
    box.press("Enter")
    line = angry.my_line("lost in the tunnel")
    expect(line).to_have_attribute("data-status", "pending")
    expect(line.get_by_test_id("line-pending")).to_be_visible()

    gate.cut()
    expect(line).to_have_attribute("data-status", "failed")
    expect(line.get_by_test_id("line-retry")).to_be_visible()
    angry.shot("21-failed-message")

    gate.drop_sends = False
    expect(angry.tid("stomp-connected")).to_be_visible(timeout=15_000)
    line.get_by_test_id("line-retry").click()
    expect(line).to_have_attribute("data-status", "delivered")
    expect(happy.page.get_by_test_id("line-text")).to_have_text(["lost in the tunnel"])
    assert angry.talk_texts() == ["lost in the tunnel"]
