"""Trust (issue 16: 1-4) in the web app: leaving a room or withdrawing an application, muting
a room, the rooms list's filter for ended chats, blocking from a room and from a board,
reporting a message, a user and a board, the blocked users list, and the server's lines
(matched, rejected, closed, left) in each reader's language. Writers use the app in English on
a desktop, applicants in Korean on a phone."""

from __future__ import annotations

from playwright.sync_api import expect

from .helpers import STRONG_PASSWORD, User, unique
from .seed import apply, auth, login, new_user, post_board, send_messages


def room_option(user: User, test_id: str) -> None:
    user.tid("room-options").click()
    user.tid(test_id).click()


def block_from_board(user: User, title: str) -> None:
    """Blocks the writer of the board ``title`` from its card's menu (the confirm has focus)."""
    card = user.search_board(title)
    card.get_by_test_id("board-options").click()
    card.get_by_test_id("board-block").click()
    expect(card.get_by_test_id("board-block-yes")).to_be_focused()
    card.get_by_test_id("board-block-yes").click()


def test_mute_leave_withdraw_and_the_ended_filter(open_user, api, base_url):
    happy = open_user("happydaddy", "1234")
    angry = open_user("angrydaddy", "1234", phone=True, locale="ko-KR")
    writer, applicant = login(api, "happydaddy", "1234"), login(api, "angrydaddy", "1234")
    first = post_board(api, writer, unique("Swimming "))
    second = post_board(api, writer, unique("Piano duet "))
    room = apply(api, applicant, first["id"])
    other_room = apply(api, applicant, second["id"])

    # Muted: no bell for that room, the unread count still goes up. A message in the other
    # room afterwards rings the bell, so the muted one had its chance to ring first.
    angry.open_room_from_chats(room)
    room_option(angry, "room-mute")
    expect(angry.tid("room-muted")).to_have_text("알림 끔")
    angry.leave_room()
    expect(angry.tid(f"room-item-{room}").get_by_test_id("room-item-muted")).to_be_visible()
    bell = angry.bell_count()
    send_messages(base_url, writer, room, ["are you muted?"])
    send_messages(base_url, writer, other_room, ["piano on Sunday?"])
    angry.expect_bell(bell + 1)
    expect(angry.tid(f"room-item-{room}").get_by_test_id("room-item-unread")).to_have_text("1")
    angry.tid("bell-button").click()
    expect(
        angry.page.locator(f'[data-testid="bell-item-message"][data-room-id="{room}"]')
    ).to_have_count(0)
    angry.page.keyboard.press("Escape")
    angry.open_room_from_chats(room)
    room_option(angry, "room-mute")
    expect(angry.tid("room-muted")).to_have_count(0)

    # The writer leaves while the applicant is away: a "left" notification, then a read-only
    # room on both sides, each saying why.
    angry.leave_room()
    happy.open_room_from_chats(room)
    room_option(happy, "room-leave")
    expect(happy.tid("room-ask-question")).to_have_text("Leave this chat with angrydaddy?")
    expect(happy.tid("room-ask-yes")).to_be_focused()
    happy.axe("room-leave-confirm-en-light-desktop")
    happy.tid("room-ask-yes").click()
    expect(happy.tid("room-readonly")).to_have_text("You left this chat. It is read-only now.")
    expect(happy.tid("message-input")).to_be_disabled()
    expect(happy.tid("status-left")).to_be_visible()
    left = angry.page.locator(f'[data-testid="bell-item-left"][data-room-id="{room}"]')
    angry.tid("bell-button").click()
    expect(left.get_by_test_id("bell-item-title")).to_have_text("happydaddy님이 채팅방을 나갔어요")
    left.click()
    assert angry.wait_room_readonly() == room
    expect(angry.tid("room-readonly")).to_have_text(
        "happydaddy님이 채팅방을 나갔어요. 이제 읽기만 할 수 있어요."
    )
    # The server's line, in the reader's language (its code and parameters, not its English).
    expect(angry.tid("line-system")).to_have_text(
        "happydaddy님이 채팅방을 나갔어요. 이제 읽기만 할 수 있어요."
    )
    angry.axe("room-left-ko-light-phone")
    angry.shot("80-room-left-ko-phone")

    # The applicant withdraws from the other board: it no longer counts them.
    angry.open_room_from_chats(other_room)
    room_option(angry, "room-leave")
    expect(angry.tid("room-ask-question")).to_have_text("지원을 취소하고 채팅방을 나갈까요?")
    angry.tid("room-ask-yes").click()
    expect(angry.tid("room-readonly")).to_have_text("채팅방을 나갔어요. 이제 읽기만 할 수 있어요.")
    happy.page.goto(f"/board/{second['id']}")
    expect(happy.tid("board-applicants")).to_have_text("no applicants")

    # The chats list hides ended chats on request, and remembers it.
    angry.tid("nav-chats").click()
    for r in (room, other_room):
        expect(angry.tid(f"room-item-{r}").get_by_test_id("status-left")).to_have_text("나감")
    angry.page.locator("label[for=chats-filter-active]").click()
    for r in (room, other_room):
        expect(angry.tid(f"room-item-{r}")).to_have_count(0)
    expect(angry.tid("chats-hidden")).to_contain_text("끝난 채팅")
    angry.axe("chats-active-ko-light-phone")
    angry.page.reload()
    expect(angry.tid("chats-filter-active")).to_be_checked()
    expect(angry.tid(f"room-item-{room}")).to_have_count(0)
    angry.page.locator("label[for=chats-filter-all]").click()
    expect(angry.tid(f"room-item-{room}")).to_be_visible()
    expect(angry.tid("chats-kept")).to_have_text("끝난 채팅은 30일 동안 목록에 남아요.")


def test_report_block_and_unblock(open_user, api, base_url):
    writer_name, writer = new_user(api, "w")
    applicant_name, applicant = new_user(api, "a")
    board = post_board(api, writer, unique("Language exchange "))
    room = apply(api, applicant, board["id"])
    w = open_user(writer_name, STRONG_PASSWORD)
    a = open_user(applicant_name, STRONG_PASSWORD, phone=True, locale="ko-KR")

    # A message is reported from its bubble: a reason, a note; the reporter's block follows.
    w.open_room_from_chats(room)
    a.open_room_from_chats(room)
    w.send("send me your bank password")
    line = a.page.locator('[data-testid="line-talk"][data-mine="false"]').last
    line.locator(".bubble").click()
    a.tid("line-report").click()
    dialog = a.tid("report-dialog")
    expect(dialog.get_by_test_id("report-quote")).to_have_text("send me your bank password")
    expect(dialog.get_by_test_id("report-submit")).to_be_disabled()
    dialog.get_by_text("사기", exact=True).click()
    dialog.get_by_test_id("report-note").fill("asked for a password")
    dialog.get_by_test_id("report-submit").click()
    expect(dialog).to_have_count(0)
    expect(a.tid("room-notice")).to_contain_text(f"{writer_name}님을 차단했어요")
    expect(a.tid("room-readonly")).to_have_text(
        f"{writer_name}님을 차단했어요. 이 채팅은 읽기만 할 수 있어요."
    )
    expect(a.tid("status-blocked")).to_be_visible()
    blocks = api.get("/boards/blocks", headers=auth(applicant)).json()["items"]
    assert [b["user"]["username"] for b in blocks] == [writer_name]
    a.shot("81-reported-blocked-ko-phone")

    # The writer is not told: no line, and the room reads as closed once the list reloads.
    w.page.reload()
    w.wait_room_readonly()
    expect(w.tid("room-readonly")).to_have_text("This chat is closed.")
    expect(w.tid("line-system")).to_have_count(0)
    expect(w.tid("status-closed")).to_be_visible()

    # Unblocking, from the account menu's list.
    a.tid("account-button").click()
    a.tid("account-blocked").click()
    expect(a.tid("blocked-view")).to_be_visible()
    item = a.tid(f"blocked-{writer_name}")
    expect(item).to_be_visible()
    a.axe("blocked-ko-light-phone")
    a.shot("82-blocked-list-ko-phone")
    item.get_by_role("button", name=f"{writer_name} 차단 해제").click()
    expect(a.tid("blocked-notice")).to_contain_text(f"{writer_name}님의 차단을 풀었어요")
    expect(a.tid("blocked-empty")).to_be_visible()
    assert api.get("/boards/blocks", headers=auth(applicant)).json()["items"] == []

    # Blocking from a board: the writer's boards leave the list.
    title = unique("Badminton ")
    post_board(api, writer, title)
    block_from_board(a, title)
    expect(a.tid("boards-notice")).to_contain_text(f"{writer_name}님을 차단했어요")
    expect(a.board_card(title)).to_have_count(0)
    blocks = api.get("/boards/blocks", headers=auth(applicant)).json()["items"]
    assert [b["user"]["username"] for b in blocks] == [writer_name]

    # Reporting a user from a room's menu (in English), then another from their board.
    spammer_name, spammer = new_user(api, "s")
    spam_room = apply(api, writer, post_board(api, spammer, unique("Cheap followers "))["id"])
    send_messages(base_url, spammer, spam_room, ["buy 1000 followers at example.com"])
    w.open_room_from_chats(spam_room)
    room_option(w, "room-report")
    dialog = w.tid("report-dialog")
    expect(dialog.get_by_role("heading")).to_have_text(f"Report {spammer_name}")
    expect(dialog.get_by_test_id("report-quote")).to_have_count(0)
    w.axe("report-user-en-light-desktop")
    dialog.get_by_text("Spam or advertising", exact=True).click()
    dialog.get_by_test_id("report-submit").click()
    expect(w.tid("room-notice")).to_have_text(
        f"Thank you. We will look at it. {spammer_name} is blocked now."
    )
    expect(w.tid("room-readonly")).to_have_text(
        f"You blocked {spammer_name}. This chat is read-only."
    )
    # The dialog gave the focus back to the menu's button.
    expect(w.tid("room-options")).to_be_focused()

    other_name, other = new_user(api, "s")
    title = unique("Free money ")
    post_board(api, other, title)
    card = w.search_board(title)
    card.get_by_test_id("board-options").click()
    card.get_by_test_id("board-report").click()
    dialog = w.tid("report-dialog")
    dialog.get_by_text("Scam or fraud", exact=True).click()
    dialog.get_by_test_id("report-submit").click()
    expect(w.tid("boards-notice")).to_have_text(
        f"Thank you. We will look at it. {other_name} is blocked now."
    )
    expect(w.board_card(title)).to_have_count(0)
    blocked = {
        b["user"]["username"]
        for b in api.get("/boards/blocks", headers=auth(writer)).json()["items"]
    }
    assert blocked == {spammer_name, other_name}


def test_the_servers_lines_speak_each_readers_language(open_user, api):
    """A match, a rejection and a close, each read in Korean and in English: the app words
    the chat server's SYSTEM lines from their code, in the chats list and in the room."""
    writer_name, writer = new_user(api, "w")
    chosen_name, chosen = new_user(api, "c")
    other_name, other = new_user(api, "o")
    title = unique("Tennis ")
    board = post_board(api, writer, title)
    won = apply(api, chosen, board["id"])
    lost = apply(api, other, board["id"])
    w = open_user(writer_name, STRONG_PASSWORD)
    c = open_user(chosen_name, STRONG_PASSWORD, phone=True, locale="ko-KR")
    o = open_user(other_name, STRONG_PASSWORD, phone=True, locale="ko-KR", dark=True)
    w.open_room_from_chats(won)
    c.open_room_from_chats(won)

    matched = api.post(f"/boards/{board['id']}/match", json={"roomId": won}, headers=auth(writer))
    matched.raise_for_status()
    expect(w.tid("line-system")).to_have_text(
        f'{writer_name} and {chosen_name} matched on "{title}". '
        "Next step: agree on a time and a place right here."
    )
    expect(c.tid("line-system")).to_have_text(
        f"{writer_name}님과 {chosen_name}님이 “{title}” 글에서 매칭됐어요. "
        "다음 단계: 여기서 시간과 장소를 정해 보세요."
    )
    c.axe("room-matched-ko-light-phone")
    c.shot("83-room-matched-ko-light-phone")
    w.shot("83-room-matched-en-light-desktop")

    # The one not chosen reads it later: in the chats list's preview, then in the room.
    rejected_ko = (
        f"{writer_name}님이 이번에는 다른 분과 매칭했어요. 지원해 주셔서 고마워요. "
        "이 채팅은 이제 읽기만 할 수 있고, 다른 글들이 기다리고 있어요."
    )
    o.tid("nav-chats").click()
    expect(o.tid(f"room-item-{lost}").get_by_test_id("room-item-last")).to_have_text(rejected_ko)
    o.tid(f"room-item-{lost}").click()
    o.wait_room_readonly()
    expect(o.tid("line-system")).to_have_text(rejected_ko)
    o.axe("room-rejected-ko-dark-phone")
    o.shot("84-room-rejected-ko-dark-phone")
    # The same stored line, in English once the reader switches.
    o.tid("account-button").click()
    o.tid("locale-en").click()
    o.page.keyboard.press("Escape")
    expect(o.tid("line-system")).to_have_text(
        f"{writer_name} matched with someone else this time. Thank you for applying: "
        "this chat is now read-only, and other boards are waiting for you."
    )
    o.axe("room-rejected-en-dark-phone")
    o.shot("84-room-rejected-en-dark-phone")

    # A board its writer closes: the applicant's line, in Korean, then in English.
    closing = unique("Jam session ")
    second = post_board(api, writer, closing)
    room = apply(api, chosen, second["id"])
    api.delete(f"/boards/{second['id']}", headers=auth(writer)).raise_for_status()
    c.tid("nav-chats").click()
    c.tid(f"room-item-{room}").click()
    c.wait_room_readonly()
    expect(c.tid("line-system")).to_have_text(
        f"{writer_name}님이 “{closing}” 글을 마감했어요. 이 채팅은 이제 읽기만 할 수 있어요."
    )
    c.tid("account-button").click()
    c.tid("locale-en").click()
    c.page.keyboard.press("Escape")
    expect(c.tid("line-system")).to_have_text(
        f'{writer_name} closed the board "{closing}". This chat is now read-only.'
    )


def test_block_from_a_room_and_a_board_then_unblock_in_english(open_user, api):
    """The English side of blocking (the Korean one is above), on a dark desktop: from a room's
    menu, from a board's, and undone from the blocked users list; the blocked user is not told."""
    writer_name, writer = new_user(api, "w")
    pest_name, pest = new_user(api, "p")
    room = apply(api, pest, post_board(api, writer, unique("Book club "))["id"])
    w = open_user(writer_name, STRONG_PASSWORD, dark=True)
    p = open_user(pest_name, STRONG_PASSWORD, phone=True)

    w.open_room_from_chats(room)
    room_option(w, "room-block")
    expect(w.tid("room-ask-question")).to_have_text(f"Block {pest_name}?")
    expect(w.tid("room-ask-yes")).to_be_focused()
    w.axe("room-block-confirm-en-dark-desktop")
    w.shot("86-room-block-confirm-en-dark-desktop")
    w.tid("room-ask-yes").click()
    expect(w.tid("room-readonly")).to_have_text(f"You blocked {pest_name}. This chat is read-only.")
    expect(w.tid("message-input")).to_be_disabled()
    expect(w.tid("status-blocked")).to_be_visible()
    # Silent: the blocked user's room just reads closed, with no line.
    p.tid("nav-chats").click()
    p.tid(f"room-item-{room}").click()
    p.wait_room_readonly()
    expect(p.tid("room-readonly")).to_have_text("This chat is closed.")
    expect(p.tid("line-system")).to_have_count(0)

    # From a board's menu: another writer's boards leave the list.
    other_name, other = new_user(api, "o")
    title = unique("Cheap tickets ")
    post_board(api, other, title)
    block_from_board(w, title)
    expect(w.board_card(title)).to_have_count(0)

    # Both listed in the account menu's list; unblocking one leaves the other.
    w.tid("account-button").click()
    w.tid("account-blocked").click()
    expect(w.tid("blocked-view")).to_be_visible()
    expect(w.tid(f"blocked-{pest_name}")).to_be_visible()
    expect(w.tid(f"blocked-{other_name}")).to_be_visible()
    w.axe("blocked-en-dark-desktop")
    w.shot("87-blocked-list-en-dark-desktop")
    w.tid(f"blocked-{pest_name}").get_by_role("button", name=f"Unblock {pest_name}").click()
    expect(w.tid("blocked-notice")).to_have_text(
        f"{pest_name} is unblocked. Chats that ended stay read-only."
    )
    expect(w.tid(f"blocked-{pest_name}")).to_have_count(0)
    expect(w.tid(f"blocked-{other_name}")).to_be_visible()
    blocks = api.get("/boards/blocks", headers=auth(writer)).json()["items"]
    assert [b["user"]["username"] for b in blocks] == [other_name]
