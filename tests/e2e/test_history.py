"""A long conversation: the newest page first, older pages as you scroll up, in order."""

from __future__ import annotations

from playwright.sync_api import expect

from .helpers import unique
from .seed import auth, login, send_messages


def test_scrolling_up_loads_older_pages(open_user, api, base_url):
    writer = login(api, "happydaddy", "1234")
    applicant = login(api, "angrydaddy", "1234")
    board = api.post("/boards", json={"title": unique("Chess partner ")}, headers=auth(writer))
    board.raise_for_status()
    room = api.post(f"/boards/{board.json()['id']}/apply", headers=auth(applicant))
    room.raise_for_status()
    room_id = room.json()["roomId"]
    texts = [f"move {i}" for i in range(1, 66)]
    send_messages(base_url, applicant, room_id, texts)

    happy = open_user("happydaddy", "1234", phone=True)
    happy.open_room_from_chats(room_id)
    lines = happy.page.get_by_test_id("line-text")
    expect(lines.last).to_have_text("move 65")
    expect(happy.tid("load-older")).to_be_visible()
    assert lines.count() < len(texts)
    happy.shot("40-history-newest-page")

    # Scroll to the top until the start of the conversation shows.
    for _ in range(10):
        if happy.tid("history-start").count():
            break
        happy.tid("message-list").evaluate("el => { el.scrollTop = 0 }")
        happy.page.wait_for_timeout(200)
    expect(happy.tid("history-start")).to_be_visible()
    assert happy.talk_texts() == texts
    happy.shot("41-history-start")
