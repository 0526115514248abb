"""The whole story of the issue, two (then three) people in separate browser contexts."""

from __future__ import annotations

from playwright.sync_api import expect

from .helpers import STRONG_PASSWORD, unique

XSS = "<img src=x onerror=alert(1)>"


def test_board_apply_chat_notify_match(open_user):
    happy = open_user("happydaddy", "1234")
    angry = open_user("angrydaddy", "1234", phone=True)
    happy.shot("01-boards-desktop")

    # happydaddy posts a board; angrydaddy finds it and applies, which opens their room.
    title = unique("Morning run buddy ")
    happy.create_board(title, "Han river, 6am, 5km")
    happy.shot("02-board-created")
    happy_alarms = happy.bell_count()
    room_id = angry.apply_and_open_room(title)
    angry.shot("03-room-phone-applicant")

    # happydaddy's bell tells him; the notification opens the board with its applicants.
    happy.expect_bell(happy_alarms + 1)
    happy.tid("bell-button").click()
    happy.tid("bell-item-applied").first.click()
    expect(happy.tid("board-view")).to_be_visible()
    expect(happy.tid("board-applicants")).to_have_text("1 applicant")
    applicant = happy.tid("applicant-angrydaddy")
    expect(applicant).to_be_visible()
    happy.expect_bell(happy_alarms)
    happy.shot("04-applicants")
    applicant.get_by_test_id("applicant-chat").click()
    assert happy.wait_room() == room_id
    expect(happy.tid("room-counterpart")).to_have_text("angrydaddy")
    expect(happy.tid("presence-here")).to_be_visible()
    expect(angry.tid("presence-here")).to_be_visible()

    # Both ways, live, in order on both screens.
    lines = [
        ("happy", "hi, still looking for a runner?"),
        ("angry", "yes! 6am works for me"),
        ("happy", "great, see you at the bridge"),
        ("angry", XSS),
    ]
    for who, text in lines:
        (happy if who == "happy" else angry).send(text)
    expected = [text for _, text in lines]
    for person in (happy, angry):
        expect(person.page.get_by_test_id("line-text")).to_have_text(expected)

    # The tag is shown as text, on both sides, and never became an element.
    for person in (happy, angry):
        expect(person.tid("message-list").locator("img")).to_have_count(0)
    happy.shot("05-room-desktop-chat")
    angry.shot("06-room-phone-chat")

    # angrydaddy leaves; happydaddy writes; angrydaddy's bell lights up.
    angry.leave_room()
    expect(happy.tid("presence-away")).to_be_visible()
    before = angry.bell_count()
    happy.send("are you still there?")
    angry.expect_bell(before + 1)
    expect(angry.tid(f"room-item-{room_id}").get_by_test_id("room-item-unread")).to_have_text("1")
    angry.shot("07-chats-phone-unread")
    angry.tid("bell-button").click()
    item = angry.tid("bell-item-message").first
    expect(item.get_by_test_id("bell-item-preview")).to_have_text("are you still there?")
    angry.shot("08-bell-open")

    # Clicking the notification opens the room and clears the badge.
    item.click()
    assert angry.wait_room() == room_id
    expect(angry.page.get_by_test_id("line-text").last).to_have_text("are you still there?")
    angry.expect_bell(before)
    angry.shot("09-room-opened-from-bell")

    # A third person applies; happydaddy matches angrydaddy; the third sees it, live.
    third = open_user(unique("e2e"), STRONG_PASSWORD, sign_in=False)
    third.register()
    third.shot("10-registered")
    third_room = third.apply_and_open_room(title)
    third.send("can I join too?")

    happy.tid("room-back").click()
    card = happy.search_board(title)
    card.get_by_test_id("board-toggle-applicants").click()
    expect(card.get_by_test_id(f"applicant-{third.username}")).to_be_visible()
    card.get_by_test_id("applicant-angrydaddy").get_by_test_id("applicant-match").click()
    expect(card.get_by_test_id("match-confirm-others")).to_contain_text(
        "The other applicant will be told."
    )
    card.get_by_test_id("match-confirm-yes").click()
    expect(card.get_by_test_id("status-matched").first).to_be_visible()
    happy.shot("11-matched")

    expect(third.tid("line-system")).to_be_visible()
    expect(third.tid("room-readonly")).to_be_visible()
    third.tid("bell-button").click()
    expect(third.tid("bell-item-rejected")).to_be_visible()
    third.shot("12-rejected")
    assert third.page.url.endswith(f"/room/{third_room}")

    # angrydaddy, still in his room, sees it matched, and can keep talking.
    expect(angry.tid("status-matched")).to_be_visible()
    expect(angry.tid("room-readonly")).to_have_count(0)
    angry.send("see you at 6!")
    angry.shot("13-matched-room")


def test_closing_a_board_makes_its_rooms_read_only(open_user):
    happy = open_user("happydaddy", "1234")
    angry = open_user("angrydaddy", "1234")
    title = unique("Guitar duo ")
    happy.create_board(title)
    angry.apply_and_open_room(title)

    card = happy.search_board(title)
    card.get_by_test_id("board-close").click()
    card.get_by_test_id("board-close-confirm").click()
    expect(card.get_by_test_id("status-closed")).to_be_visible()

    # The applicant is told in the room, which turns read-only.
    expect(angry.tid("line-system")).to_be_visible()
    expect(angry.tid("room-readonly")).to_be_visible()
    expect(angry.tid("message-input")).to_be_disabled()
    angry.shot("14-closed-room")

    # The status filter finds it among the closed boards, and no longer among the open ones.
    happy.tid("board-status-filter").select_option("closed")
    expect(happy.tid("board-list")).to_have_attribute("data-shown", f"closed|{title}")
    expect(happy.board_card(title)).to_be_visible()
    happy.tid("board-status-filter").select_option("open")
    expect(happy.tid("board-list")).to_have_attribute("data-shown", f"open|{title}")
    expect(happy.board_card(title)).to_have_count(0)
    happy.shot("15-closed-filter")
