"""The room survives a dropped connection: nothing missed, nothing doubled, failed sends retry."""

from __future__ import annotations

import json
import re

from playwright.sync_api import Route, expect

from .gate import StompGate
from .helpers import STRONG_PASSWORD, pair_in_room, unique
from .seed import auth, login, send_messages


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


def test_a_refused_message_can_be_retried_edited_or_deleted(open_user):
    """A message the server refuses stops as "Not sent" with the reason; the ones after it go
    on. The sender retries it as it was (the same clientMessageId), edits it into a new one, or
    deletes it. The gate makes the server refuse, by spoiling those frames on their way."""
    happy = open_user("happydaddy", "1234")
    angry = open_user("angrydaddy", "1234", phone=True, sign_in=False)
    gate = StompGate(angry.page)
    angry.sign_in()
    pair_in_room(happy, angry)

    gate.spoil = {"first draft", "drop me", "try again"}
    box = angry.tid("message-input")
    for text in ("first draft", "drop me", "try again", "third"):
        box.fill(text)
        box.press("Enter")
    failed = angry.page.locator('[data-testid="line-talk"][data-status="failed"]')
    expect(failed).to_have_count(3)
    expect(angry.my_line("third")).to_have_attribute("data-status", "delivered")
    expect(failed.first.get_by_test_id("line-failed")).to_contain_text("This message is too long")
    expect(happy.page.get_by_test_id("line-text")).to_have_text(["third"])
    angry.shot("21-failed-messages-phone")
    angry.axe("room-failed-en-light-phone")

    # Retry: the same message again, after what went before it.
    angry.my_line("try again").get_by_test_id("line-retry").click()
    expect(angry.my_line("try again")).to_have_attribute("data-status", "delivered")
    keys = [
        json.loads(frame.split("\n\n", 1)[1].rstrip("\x00"))["clientMessageId"]
        for frame in gate.sends
        if "try again" in frame
    ]
    assert len(keys) == 2 and keys[0] == keys[1] and len(keys[0]) >= 16

    # Edit: back into the input, changed, sent as a new message.
    angry.my_line("first draft").get_by_test_id("line-edit").click()
    expect(angry.my_line("first draft")).to_have_count(0)
    expect(box).to_have_value("first draft")
    box.fill("first draft, fixed")
    box.press("Enter")
    expect(angry.my_line("first draft, fixed")).to_have_attribute("data-status", "delivered")

    # Delete: gone from this screen, never sent.
    angry.my_line("drop me").get_by_test_id("line-discard").click()
    expect(failed).to_have_count(0)
    expected = ["third", "try again", "first draft, fixed"]
    for person in (happy, angry):
        expect(person.page.get_by_test_id("line-text")).to_have_text(expected)
    angry.page.reload()
    angry.wait_room()
    expect(angry.page.get_by_test_id("line-text")).to_have_text(expected)


def _room_through_api(api, title: str) -> tuple[str, str, str]:
    """happydaddy's board and angrydaddy's application; returns (room, writer, applicant)."""
    writer = login(api, "happydaddy", "1234")
    applicant = login(api, "angrydaddy", "1234")
    board = api.post("/boards", json={"title": title}, headers=auth(writer))
    board.raise_for_status()
    room = api.post(f"/boards/{board.json()['id']}/apply", headers=auth(applicant))
    room.raise_for_status()
    return room.json()["roomId"], writer, applicant


def test_notification_stream_reopens_with_a_new_ticket(open_user, api, base_url):
    room_id, writer, _ = _room_through_api(api, unique("Badminton "))
    angry = open_user("angrydaddy", "1234", sign_in=False)
    # The refused streams show up in the console, as they would on a flaky network.
    angry.allow_console(r"notify/stream|ERR_FAILED")
    refused: list[str] = []

    def stream(route):
        if len(refused) < 2:
            refused.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    angry.page.route(re.compile(r".*/notify/stream\?.*"), stream)
    tickets: list[str] = []
    angry.page.on(
        "request", lambda r: tickets.append(r.url) if r.url.endswith("/notify/ticket") else None
    )
    angry.sign_in()
    expect(angry.tid("bell")).to_have_attribute("data-live", "true", timeout=15_000)
    # A ticket is good for one stream only: every reopen took a new one.
    assert len(refused) == 2
    assert len(tickets) >= 3
    assert len(set(refused)) == 2

    before = angry.bell_count()
    send_messages(base_url, writer, room_id, ["ping over a reopened stream"])
    angry.expect_bell(before + 1)


def test_room_is_usable_before_its_history_arrives(open_user, api, base_url):
    room_id, writer, _ = _room_through_api(api, unique("Climbing "))
    earlier = ["first", "second", "third"]
    send_messages(base_url, writer, room_id, earlier)

    happy = open_user("happydaddy", "1234")
    held: list[Route] = []
    history = re.compile(r".*/chat/rooms/[^/]+/messages.*")

    def hold(route):  # history requests wait until released below
        held.append(route)

    happy.page.route(history, hold)
    happy.open_room_from_chats(room_id)
    expect(happy.tid("history-loading")).to_be_visible()
    happy.send("typed before the history came")
    expect(happy.tid("history-loading")).to_be_visible()
    assert held, "the history request should still be waiting"

    for route in held:
        route.continue_()
    happy.page.unroute(history)
    expect(happy.tid("history-start")).to_be_visible()
    expect(happy.page.get_by_test_id("line-text")).to_have_text(
        [*earlier, "typed before the history came"]
    )


def test_a_stranger_is_refused_a_room_without_a_reconnect_loop(open_user, api):
    room_id, _, _ = _room_through_api(api, unique("Private "))
    stranger = open_user(unique("e2e"), STRONG_PASSWORD, sign_in=False)
    stranger.allow_console(r"status of 403")  # history and presence refuse a non-member
    gate = StompGate(stranger.page)
    stranger.register()
    expect(stranger.tid("stomp-connected")).to_be_visible()

    before = gate.connections
    stranger.page.goto(f"/room/{room_id}")
    expect(stranger.tid("room-refused")).to_be_visible()
    expect(stranger.tid("message-input")).to_be_disabled()
    stranger.shot("22-room-refused")
    # Each ERROR closes the shared socket. The room is tried once more on a fresh connection,
    # then left out: the connection comes back and stays up.
    expect(stranger.tid("stomp-connected")).to_be_visible()
    stranger.page.wait_for_timeout(3000)
    expect(stranger.tid("stomp-connected")).to_be_visible()
    assert gate.connections - before <= 3  # page load, the retry, the final reconnect
