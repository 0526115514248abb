"""The match moment and calmer notifications (issue 15: 1, 6). happydaddy writes on a desktop,
angrydaddy applies from a phone, and two more people apply through the API."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from .helpers import STRONG_PASSWORD, User, unique
from .seed import auth, login


def title_count(user: User) -> int:
    """The unread count in the tab's title ("(3) duochat"), 0 when there is none."""
    match = re.match(r"\((\d+)\) duochat$", user.page.title())
    return int(match.group(1)) if match else 0


def applicant(api, board_id: str) -> tuple[str, str]:
    """A new user who applies to the board; returns (their token, their room)."""
    name = unique("e2e")
    api.post("/auth/register", json={"username": name, "password": STRONG_PASSWORD})
    token = login(api, name, STRONG_PASSWORD)
    room = api.post(f"/boards/{board_id}/apply", headers=auth(token))
    room.raise_for_status()
    return token, room.json()["roomId"]


def test_one_bell_entry_per_room_then_a_confirmed_match(open_user, api):
    happy = open_user("happydaddy", "1234")
    angry = open_user("angrydaddy", "1234", phone=True)
    title = unique("Bouldering partner ")
    board_id = happy.create_board(title, "Tuesdays after work")
    room_id = angry.apply_and_open_room(title)
    others = [applicant(api, board_id) for _ in range(2)]
    angry.leave_room()
    happy.open_room_from_chats(room_id)

    # Four messages while angrydaddy is away: one bell entry that counts them, one more in
    # the badge (not four), and the four in the Chats badge and the tab's title.
    bell_before, title_before = angry.bell_count(), title_count(angry)
    for n in range(1, 5):
        happy.send(f"message {n} of 4")
    entry = angry.page.locator(f'[data-testid="bell-item-message"][data-room-id="{room_id}"]')
    angry.expect_bell(bell_before + 1)
    expect(angry.tid(f"room-item-{room_id}").get_by_test_id("room-item-unread")).to_have_text("4")
    expect(angry.page).to_have_title(f"({title_before + 4}) duochat")
    angry.tid("bell-button").click()
    expect(entry).to_have_count(1)
    expect(entry.get_by_test_id("bell-item-count")).to_have_text("4 new")
    expect(entry.get_by_test_id("bell-item-preview")).to_have_text("message 4 of 4")
    expect(entry.get_by_test_id("bell-item-title")).to_have_text("happydaddy wrote")
    angry.shot("60-bell-one-entry-phone")
    # A reload lists it the same way (the server groups it too).
    angry.page.reload()
    angry.tid("bell-button").click()
    expect(entry).to_have_count(1)
    expect(entry.get_by_test_id("bell-item-count")).to_have_text("4 new")
    entry.click()
    assert angry.wait_room() == room_id
    angry.expect_bell(bell_before)
    expect(angry.page).to_have_title(
        f"({title_before}) duochat" if title_before else "duochat", timeout=10_000
    )

    # Match, from the room's header, asks first, naming him and how many others will be told.
    happy.tid("room-match").click()
    confirm = happy.tid("match-confirm")
    expect(confirm.get_by_test_id("match-confirm-question")).to_have_text("Match with angrydaddy?")
    expect(confirm.get_by_test_id("match-confirm-others")).to_contain_text(
        "The 2 others will be told."
    )
    happy.shot("61-match-confirm-desktop")
    confirm.get_by_test_id("match-confirm-cancel").click()
    expect(confirm).to_have_count(0)
    writer = auth(login(api, "happydaddy", "1234"))
    assert api.get(f"/boards/{board_id}", headers=writer).json()["status"] == "open"
    happy.tid("room-match").click()
    happy.tid("match-confirm-yes").click()

    # The pair gets a warm line with a next step, live on both screens; the room stays open.
    for person in (happy, angry):
        line = person.tid("line-system")
        expect(line).to_contain_text(f'happydaddy and angrydaddy matched on "{title}"')
        expect(line).to_contain_text("Next step")
        expect(person.tid("status-matched")).to_be_visible()
    expect(happy.tid("room-match")).to_have_count(0)
    expect(angry.tid("room-readonly")).to_have_count(0)
    angry.shot("62-matched-phone")
    happy.shot("63-matched-desktop")
    angry.send("Tuesday at 7 then!")

    # The others get a line of their own; none of it counts as happydaddy's unread.
    for token, other_room in others:
        page = api.get(f"/chat/rooms/{other_room}/messages", headers=auth(token)).json()
        (line,) = [m for m in page["items"] if m["type"] == "SYSTEM"]
        assert line["message"].startswith("happydaddy matched with someone else this time.")
    unread = api.get("/chat/rooms/unread", headers=writer).json()
    assert [unread.get(other_room) for _, other_room in others] == [0, 0]


def test_applicants_list_match_asks_and_a_closed_board_reads_closed(open_user, api):
    happy = open_user("happydaddy", "1234")
    angry = open_user("angrydaddy", "1234", phone=True)
    writer = login(api, "happydaddy", "1234")
    angry_token = login(api, "angrydaddy", "1234")

    # From the applicants list: the same question, with one other applicant.
    title = unique("Chess club ")
    board = api.post("/boards", json={"title": title}, headers=auth(writer)).json()
    api.post(f"/boards/{board['id']}/apply", headers=auth(angry_token)).raise_for_status()
    applicant(api, board["id"])
    card = happy.search_board(title)
    card.get_by_test_id("board-toggle-applicants").click()
    card.get_by_test_id("applicant-angrydaddy").get_by_test_id("applicant-match").click()
    confirm = card.get_by_test_id("match-confirm")
    expect(confirm.get_by_test_id("match-confirm-question")).to_have_text("Match with angrydaddy?")
    expect(confirm.get_by_test_id("match-confirm-others")).to_contain_text(
        "The other applicant will be told."
    )
    happy.shot("64-applicants-match-confirm")
    confirm.get_by_test_id("match-confirm-yes").click()
    expect(card.get_by_test_id("status-matched").first).to_be_visible()

    # A board its writer closes reads "closed" in the applicant's bell, not "matched".
    title = unique("Jam session ")
    board = api.post("/boards", json={"title": title}, headers=auth(writer)).json()
    room = api.post(f"/boards/{board['id']}/apply", headers=auth(angry_token)).json()
    card = happy.search_board(title)
    card.get_by_test_id("board-close").click()
    card.get_by_test_id("board-close-confirm").click()
    expect(card.get_by_test_id("status-closed")).to_be_visible()
    angry.tid("bell-button").click()
    entry = angry.page.locator(
        f'[data-testid="bell-item-rejected"][data-room-id="{room["roomId"]}"]'
    )
    expect(entry.get_by_test_id("bell-item-title")).to_have_text("Board closed")
    expect(entry).to_contain_text(title)
    angry.shot("65-bell-closed-phone")
