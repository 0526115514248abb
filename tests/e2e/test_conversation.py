"""What a conversation shows besides its messages (issue 15: 3, 4, 5, 7): presence in the
header instead of lines, read receipts ("1"), typing, unsending, links, groups of messages, day
dividers, an input that grows, and the character counter. happydaddy on a desktop and
angrydaddy on a phone, side by side."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

from playwright.sync_api import expect

from .helpers import pair_in_room, unique
from .seed import auth, login, send_messages


def test_presence_read_receipts_typing_and_unsend(open_user):
    happy = open_user("happydaddy", "1234")
    angry = open_user("angrydaddy", "1234", phone=True)
    room_id = pair_in_room(happy, angry)

    # Coming and going shows in the header, never as lines of the conversation.
    angry.leave_room()
    expect(happy.tid("presence-away")).to_be_visible()
    expect(happy.tid("presence-text")).to_have_text("away")
    angry.open_room_from_chats(room_id)
    expect(happy.tid("presence-here")).to_be_visible()
    expect(happy.tid("presence-text")).to_have_text("in the room")
    for person in (happy, angry):
        expect(person.tid("message-list")).not_to_contain_text("entered the room")
        expect(person.tid("message-list")).not_to_contain_text("left the room")

    # Read receipts: "1" while angrydaddy is away, gone the moment he reads.
    angry.leave_room()
    expect(happy.tid("presence-away")).to_be_visible()
    happy.send("are you up?")
    mine = happy.my_line("are you up?")
    expect(mine.get_by_test_id("line-unread")).to_have_text("1")
    expect(mine.get_by_test_id("line-delivered")).to_be_visible()
    happy.shot("30-unread-one-desktop")
    angry.open_room_from_chats(room_id)
    expect(mine.get_by_test_id("line-unread")).to_have_count(0)
    # After a reload the state comes from history: stored (✓) and read (no "1").
    happy.page.reload()
    happy.wait_room()
    expect(mine.get_by_test_id("line-delivered")).to_be_visible()
    expect(mine.get_by_test_id("line-unread")).to_have_count(0)

    # Typing: shown while angrydaddy types, gone as soon as his message arrives...
    angry.tid("message-input").fill("yes, just")
    expect(happy.tid("typing-indicator")).to_have_text("typing…")
    angry.shot("31-typing-phone")
    happy.shot("32-typing-desktop")
    angry.tid("message-input").press("Enter")
    expect(happy.page.get_by_test_id("line-text").last).to_have_text("yes, just")
    expect(happy.tid("typing-indicator")).to_have_count(0, timeout=1000)
    # ...and a few seconds after he stops.
    angry.tid("message-input").fill("hmm")
    expect(happy.tid("typing-indicator")).to_be_visible()
    expect(happy.tid("typing-indicator")).to_have_count(0, timeout=8000)
    angry.tid("message-input").fill("")

    # Unsend: my message, within 5 minutes; both screens show "message deleted" at once.
    happy.send("oops, wrong chat")
    oops = happy.my_line("oops, wrong chat")
    theirs = angry.page.locator('[data-testid="line-talk"]').filter(has_text="oops, wrong chat")
    expect(theirs).to_be_visible()
    oops_id = oops.get_attribute("data-id")
    # Not offered on someone else's message (which may be reported instead).
    happy.page.locator('[data-testid="line-talk"][data-mine="false"]').last.locator(
        ".bubble"
    ).click()
    expect(happy.tid("line-menu").get_by_test_id("line-report")).to_be_visible()
    expect(happy.tid("line-unsend")).to_have_count(0)
    happy.page.keyboard.press("Escape")
    expect(happy.tid("line-menu")).to_have_count(0)
    oops.locator(".bubble").click()
    happy.tid("line-unsend").click()
    for person in (happy, angry):
        line = person.page.locator(f'[data-testid="line-talk"][data-id="{oops_id}"]')
        expect(line.get_by_test_id("line-deleted")).to_have_text("message deleted")
        expect(person.tid("message-list")).not_to_contain_text("oops, wrong chat")
    angry.shot("33-unsent-phone")
    angry.page.reload()
    angry.wait_room()
    line = angry.page.locator(f'[data-testid="line-talk"][data-id="{oops_id}"]')
    expect(line.get_by_test_id("line-deleted")).to_be_visible()
    expect(angry.page.get_by_test_id("line-text")).to_have_text(["are you up?", "yes, just"])

    # A message of his that happydaddy has not read keeps its "1" across a reload.
    happy.leave_room()
    angry.send("see you at 6")
    expect(angry.my_line("see you at 6").get_by_test_id("line-unread")).to_have_text("1")
    angry.page.reload()
    angry.wait_room()
    expect(angry.my_line("see you at 6").get_by_test_id("line-unread")).to_have_text("1")
    expect(angry.my_line("yes, just").get_by_test_id("line-unread")).to_have_count(0)


def age_messages(chat_db, room_id: str, days_back: dict[str, int]) -> None:
    """Moves stored messages (by text) back by whole days, as if written then."""
    with sqlite3.connect(chat_db) as db:
        for text, days in days_back.items():
            (stamp,) = db.execute(
                "SELECT created_at FROM chat_messages WHERE room_id = ? AND message = ?",
                (room_id, text),
            ).fetchone()
            older = datetime.fromisoformat(stamp) - timedelta(days=days)
            db.execute(
                "UPDATE chat_messages SET created_at = ? WHERE room_id = ? AND message = ?",
                (older.isoformat(sep=" "), room_id, text),
            )


def test_links_groups_days_growing_input_and_the_counter(open_user, api, base_url, chat_db):
    writer = login(api, "happydaddy", "1234")
    applicant = login(api, "angrydaddy", "1234")
    board = api.post("/boards", json={"title": unique("Tennis ")}, headers=auth(writer))
    room_id = api.post(f"/boards/{board.json()['id']}/apply", headers=auth(applicant)).json()[
        "roomId"
    ]
    send_messages(base_url, applicant, room_id, ["three days ago", "yesterday", "this morning"])
    age_messages(chat_db, room_id, {"three days ago": 3, "yesterday": 1})

    happy = open_user("happydaddy", "1234")
    angry = open_user("angrydaddy", "1234", phone=True)
    happy.open_room_from_chats(room_id)
    angry.open_room_from_chats(room_id)

    # Day dividers from history: the day three days ago, yesterday, today.
    three_days_ago = (datetime.now() - timedelta(days=3)).strftime("%A")
    dividers = happy.page.get_by_test_id("day-divider")
    expect(dividers).to_have_count(3)
    expect(dividers.nth(0)).to_contain_text(three_days_ago)
    expect(dividers.nth(1)).to_have_text("Yesterday")
    expect(dividers.nth(2)).to_have_text("Today")
    expect(happy.page.get_by_test_id("line-text")).to_have_text(
        ["three days ago", "yesterday", "this morning"]
    )

    # Links are links (built as elements, opened apart from this page); the rest stays text.
    happy.send("route: https://example.com/run?km=5, or www.example.org. Not javascript:alert(1)")
    line = angry.page.get_by_test_id("line-text").last
    links = line.get_by_test_id("line-link")
    expect(links).to_have_count(2)
    expect(links.nth(0)).to_have_text("https://example.com/run?km=5")
    expect(links.nth(0)).to_have_attribute("href", "https://example.com/run?km=5")
    expect(links.nth(1)).to_have_attribute("href", "https://www.example.org")
    for i in range(2):
        expect(links.nth(i)).to_have_attribute("rel", "noopener noreferrer")
        expect(links.nth(i)).to_have_attribute("target", "_blank")
    expect(line).to_contain_text("Not javascript:alert(1)")

    # A run of one person's messages is one group: the name once, the time once.
    for text in ("one", "two", "three"):
        happy.send(text)
    talk = angry.page.locator('[data-testid="line-talk"]')
    expect(talk).to_have_count(7)
    run = [talk.nth(i) for i in range(3, 7)]  # the link message, then one, two, three
    expect(run[0].get_by_test_id("line-sender")).to_have_text("happydaddy")
    for later in run[1:]:
        expect(later.get_by_test_id("line-sender")).to_have_count(0)
    for earlier in run[:-1]:
        expect(earlier.get_by_test_id("line-time")).to_have_count(0)
    expect(run[-1].get_by_test_id("line-time")).to_be_visible()
    angry.shot("34-links-groups-days-phone")

    # The input grows with its lines, up to a few, then scrolls.
    box = angry.tid("message-input")
    one_line = box.bounding_box()["height"]
    box.fill("first\nsecond\nthird")
    expect(box).to_have_value("first\nsecond\nthird")
    three_lines = box.bounding_box()["height"]
    assert three_lines > one_line * 2, (one_line, three_lines)
    box.fill("\n".join(f"line {n}" for n in range(12)))
    tall = box.bounding_box()["height"]
    assert three_lines < tall < one_line * 6, (one_line, three_lines, tall)
    assert box.evaluate("el => el.scrollHeight > el.clientHeight")
    angry.shot("35-input-grows-phone")

    # The counter shows near the limit, and past it the message cannot go.
    box.fill("x" * 850)
    expect(angry.tid("char-counter")).to_have_count(0)
    box.fill("x" * 950)
    expect(angry.tid("char-counter")).to_have_text("950 / 1000")
    box.fill("x" * 1001)
    counter = angry.tid("char-counter")
    expect(counter).to_have_attribute("data-over", "true")
    expect(counter).to_contain_text("1001 / 1000")
    expect(angry.tid("message-send")).to_be_disabled()
    box.press("Enter")
    expect(box).to_have_value("x" * 1001)
    angry.shot("36-counter-over-phone")
    box.press("Backspace")
    expect(counter).to_have_attribute("data-over", "false")
    box.press("Enter")
    expect(angry.my_line("x" * 1000)).to_have_attribute("data-status", "delivered")
    expect(happy.page.get_by_test_id("line-text").last).to_have_text("x" * 1000)
