"""Reach (issue 16: 5-8): a first visit that explains itself, Korean and English, accessibility
(axe-core on every screen, in both themes, on a desktop and a phone) and browser notifications
while the tab is hidden."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .helpers import STRONG_PASSWORD, User, unique
from .seed import apply, auth, login, new_user, post_board, send_messages

RAW_VALIDATOR_TEXT = re.compile(
    r"String should|should have at least|must be at least|Field required"
)


def focused_testid(user: User) -> str | None:
    return user.page.evaluate("document.activeElement?.dataset?.testid ?? null")


def test_first_visit_in_korean_explains_itself_then_switches_to_english(open_user, fresh_base_url):
    """A Korean phone in dark mode opens a brand-new install: the landing says what duochat
    is before the form, registration shows its rules and then plain sentences, the empty
    boards page invites the first post; the account menu switches to English for good."""
    name = unique("first")
    visitor = open_user(
        name,
        STRONG_PASSWORD,
        phone=True,
        dark=True,
        locale="ko-KR",
        sign_in=False,
        via=fresh_base_url,
    )
    # The deliberate registration failures below log their HTTP status in the console.
    visitor.allow_console(r"status of (409|422)")
    page = visitor.page
    page.goto("/")
    expect(visitor.tid("login-view")).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "ko")
    expect(page.locator("html")).to_have_attribute("data-bs-theme", "dark")

    # What duochat is, in two lines and four steps, above the sign-in form.
    expect(visitor.tid("landing-lead")).to_contain_text("함께할 사람")
    expect(visitor.tid("landing-steps").locator("li")).to_have_count(4)
    expect(visitor.tid("landing-steps").locator("li .fw-bold")).to_have_text(
        ["1 글쓰기", "2 지원", "3 1:1 채팅", "4 매칭"]
    )
    landing = visitor.tid("landing").bounding_box()
    form = visitor.tid("login-form").bounding_box()
    assert landing and form and landing["y"] + landing["height"] <= form["y"]
    visitor.axe("login-ko-dark-phone")
    visitor.shot("70-landing-ko-dark-phone")

    # Sign in / register are tabs that say which one is selected; arrows move between them.
    signin, register = visitor.tid("tab-signin"), visitor.tid("tab-register")
    expect(signin).to_have_attribute("role", "tab")
    expect(signin).to_have_attribute("aria-selected", "true")
    signin.focus()
    page.keyboard.press("ArrowRight")
    expect(register).to_have_attribute("aria-selected", "true")
    expect(signin).to_have_attribute("aria-selected", "false")
    assert focused_testid(visitor) == "tab-register"

    # The rules, before anything is submitted.
    rules = visitor.tid("register-rules")
    expect(rules).to_contain_text("32자")
    expect(rules).to_contain_text("8자 이상")
    expect(visitor.tid("login-username")).to_have_attribute(
        "aria-describedby", re.compile("rule-username")
    )

    # Plain sentences after, on the field they concern, never a validator's text.
    visitor.tid("login-submit").click()
    expect(visitor.tid("error-username")).to_have_text("아이디를 입력해 주세요.")
    expect(visitor.tid("error-password")).to_have_text("비밀번호를 입력해 주세요.")
    visitor.tid("login-username").fill("happydaddy")
    visitor.tid("login-password").fill(STRONG_PASSWORD)
    visitor.tid("login-submit").click()
    expect(visitor.tid("error-username")).to_have_text(
        "이미 쓰고 있는 아이디예요. 다른 아이디를 골라 주세요."
    )
    expect(visitor.tid("login-username")).to_be_focused()
    # Every broken rule at once, each on its field (the server lists them all), the most
    # common passwords refused.
    visitor.tid("login-username").fill("ab")
    visitor.tid("login-password").fill("password")
    visitor.tid("login-submit").click()
    expect(visitor.tid("error-username")).to_have_text("아이디가 너무 짧아요. 3자 이상이어야 해요.")
    expect(visitor.tid("error-password")).to_have_text(
        "너무 흔한 비밀번호예요. 다른 비밀번호를 골라 주세요."
    )
    visitor.tid("login-username").fill(name)
    visitor.tid("login-password").fill(name.upper())
    visitor.tid("login-submit").click()
    expect(visitor.tid("error-password")).to_have_text("아이디와 같은 비밀번호는 쓸 수 없어요.")
    expect(visitor.tid("error-username")).to_have_count(0)
    for field in ("error-password",):
        assert not RAW_VALIDATOR_TEXT.search(visitor.tid(field).inner_text())
    visitor.axe("register-errors-ko-dark-phone")
    visitor.shot("71-register-errors-ko-dark-phone")

    visitor.tid("login-password").fill(STRONG_PASSWORD)
    visitor.tid("login-submit").click()
    expect(visitor.tid("boards-view")).to_be_visible()

    # Nobody has posted yet: the page invites the first post instead of "nothing here".
    first = visitor.tid("boards-first")
    expect(first).to_contain_text("첫 글을 올려 보세요")
    visitor.axe("boards-empty-ko-dark-phone")
    visitor.shot("72-boards-empty-ko-dark-phone")
    visitor.tid("boards-first-post").click()
    expect(visitor.tid("board-form-title")).to_be_focused()
    visitor.tid("board-form-title").fill("아침 러닝 메이트 구해요")
    visitor.tid("board-form-submit").click()
    card = visitor.board_card("아침 러닝 메이트 구해요")
    expect(card.get_by_test_id("board-time")).to_have_text("지금")
    expect(card.get_by_test_id("board-applicants")).to_have_text("지원자 0명")
    expect(card.get_by_test_id("status-open")).to_have_text("모집 중")
    expect(visitor.tid("boards-first")).to_have_count(0)

    # English from the account menu: everything follows, and the choice outlives a reload.
    visitor.tid("account-button").click()
    expect(visitor.tid("locale-ko")).to_have_attribute("aria-pressed", "true")
    visitor.axe("account-menu-ko-dark-phone")
    visitor.tid("locale-en").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(visitor.tid("nav-boards")).to_have_text("Boards")
    expect(card.get_by_test_id("board-time")).to_have_text("now")
    expect(card.get_by_test_id("board-applicants")).to_have_text("no applicants")
    # Escape closes the menu and gives the focus back to its button.
    page.keyboard.press("Escape")
    expect(visitor.tid("account-menu")).to_have_count(0)
    expect(visitor.tid("account-button")).to_be_focused()
    page.reload()
    expect(visitor.tid("boards-view")).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(visitor.tid("nav-chats")).to_contain_text("Chats")
    visitor.shot("73-boards-en-dark-phone")


def test_every_screen_passes_axe_in_both_themes_and_keyboard_paths(open_user, api, base_url):
    """happydaddy on a light desktop in English, angrydaddy on a dark phone in Korean: every
    screen they pass through has no serious or critical axe violation; icon buttons have
    names, the bell says its count, Escape gives the focus back, and Shift+Tab from the input
    stays at the bottom of a long conversation."""
    happy = open_user("happydaddy", "1234")
    angry = open_user("angrydaddy", "1234", phone=True, dark=True, locale="ko-KR")
    expect(angry.page.locator("html")).to_have_attribute("lang", "ko")
    for user, tag in ((happy, "en-light-desktop"), (angry, "ko-dark-phone")):
        user.axe(f"boards-{tag}")

    # A board with an applicant: the board page, its applicants and the match confirm.
    title = unique("Climbing partner ")
    board_id = happy.create_board(title, "Saturday mornings")
    room_id = angry.apply_and_open_room(title)
    expect(angry.tid("room-board-title")).to_have_text(title)
    happy.page.goto(f"/board/{board_id}")
    expect(happy.tid("applicant-angrydaddy")).to_be_visible()
    happy.axe("board-en-light-desktop")
    match = happy.tid("applicant-angrydaddy").get_by_role("button", name="Match with angrydaddy")
    match.click()
    expect(happy.tid("match-confirm")).to_be_visible()
    expect(happy.tid("match-confirm-yes")).to_be_focused()
    happy.axe("match-confirm-en-light-desktop")
    happy.page.keyboard.press("Escape")
    expect(happy.tid("match-confirm")).to_have_count(0)
    expect(match).to_be_focused()

    # The bell: its name carries the count, and a live region says it.
    bell_before = angry.bell_count()
    happy.open_room_from_chats(room_id)
    angry.leave_room()
    happy.send("are you free on Saturday?")
    angry.expect_bell(bell_before + 1)
    bell = angry.tid("bell-button")
    expect(bell).to_have_attribute("aria-label", f"알림, 새 소식 {bell_before + 1}개")
    expect(angry.tid("bell-announce")).to_have_text(f"새 알림 {bell_before + 1}개")
    angry.axe("chats-ko-dark-phone")
    angry.shot("74-chats-ko-dark-phone")
    bell.click()
    expect(angry.tid("bell-menu")).to_be_visible()
    angry.axe("bell-ko-dark-phone")
    angry.page.keyboard.press("Escape")
    expect(angry.tid("bell-menu")).to_have_count(0)
    expect(bell).to_be_focused()

    # The room, both sides, with what a room shows: my times, the unread "1", their lines.
    angry.open_room_from_chats(room_id)
    happy.leave_room()
    angry.send("네, 토요일 좋아요")
    expect(angry.my_line("네, 토요일 좋아요").get_by_test_id("line-unread")).to_be_visible()
    expect(angry.tid("day-divider").first).to_have_text("오늘")
    expect(angry.page.get_by_role("link", name="채팅 목록으로")).to_be_visible()
    angry.axe("room-ko-dark-phone")
    angry.shot("75-room-ko-dark-phone")
    happy.open_room_from_chats(room_id)
    happy.send("great, 9am?")
    expect(angry.page.get_by_test_id("line-text").last).to_have_text("great, 9am?")
    expect(happy.page.get_by_role("link", name="Back to chats")).to_be_visible()
    expect(happy.page.get_by_role("button", name="Chat options")).to_be_visible()
    happy.axe("room-en-light-desktop")
    happy.shot("75-room-en-light-desktop")
    # The options menu and the report dialog (for a message of the other member).
    happy.tid("room-options").click()
    # An open menu covers part of the page, which was checked above: check the menu itself.
    happy.axe("room-options-en-light-desktop", include="#room-options")
    happy.page.keyboard.press("Escape")
    expect(happy.tid("room-options")).to_be_focused()
    theirs = angry.page.locator('[data-testid="line-talk"][data-mine="false"]').last
    theirs.locator(".bubble").click()
    angry.tid("line-report").click()
    dialog = angry.tid("report-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_test_id("report-quote")).to_have_text("great, 9am?")
    angry.axe("report-dialog-ko-dark-phone")
    angry.shot("76-report-dialog-ko-dark-phone")
    angry.page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    expect(theirs.locator(".bubble")).to_be_focused()

    # "Not now" to the notifications offer (angrydaddy wrote here) is remembered.
    angry.tid("notify-prompt-no").click()
    expect(angry.tid("notify-prompt")).to_have_count(0)
    angry.page.reload()
    angry.wait_room()
    expect(angry.tid("notify-prompt")).to_have_count(0)

    # A long conversation: Shift+Tab from the input goes into the list, not to its top.
    token = login(api, "happydaddy", "1234")
    send_messages(base_url, token, room_id, [f"line {n}" for n in range(1, 61)])
    angry.page.reload()  # history's newest page, with older ones to load above it
    angry.wait_room()
    expect(angry.page.get_by_test_id("line-text").last).to_have_text("line 60")
    log = angry.tid("message-list")
    angry.page.wait_for_function(
        "el => el.scrollHeight - el.scrollTop - el.clientHeight < 80", arg=log.element_handle()
    )
    expect(angry.tid("load-older")).to_have_attribute("tabindex", "-1")
    angry.tid("message-input").focus()
    angry.page.keyboard.press("Shift+Tab")
    assert angry.page.evaluate(
        """() => {
            const list = document.querySelector('[data-testid=message-list]')
            const el = document.activeElement
            return list.contains(el) && el.dataset.testid !== 'load-older'
                && list.scrollHeight - list.scrollTop - list.clientHeight < 80
        }"""
    )


# The browser's Notification, recorded (headless Chromium shows nothing one could look at), and
# the tab's visibility under the test's control (headless tabs are always visible).
NOTIFICATION_SPY = """
(() => {
  const Real = window.Notification
  window.__notifications = []
  window.__notificationObjects = []
  class Recorded extends Real {
    constructor(title, options = {}) {
      super(title, options)
      window.__notifications.push({ title, body: options.body || '', tag: options.tag || '',
                                    closed: false })
      window.__notificationObjects.push(this)
    }
    close() {
      const i = window.__notificationObjects.indexOf(this)
      if (i >= 0) window.__notifications[i].closed = true
      super.close()
    }
  }
  window.Notification = Recorded
  let hidden = false
  Object.defineProperty(document, 'visibilityState', { get: () => (hidden ? 'hidden' : 'visible') })
  Object.defineProperty(document, 'hidden', { get: () => hidden })
  window.__setHidden = (h) => {
    hidden = h
    document.dispatchEvent(new Event('visibilitychange'))
  }
})()
"""


def notifications(user: User) -> list[dict]:
    return user.page.evaluate("window.__notifications")


def test_browser_notifications_when_the_tab_is_hidden(open_user, api, base_url):
    """Permission is asked only once angrydaddy wrote in a room (never on first load), from
    the app's own prompt; while the tab is hidden a room's burst makes one notification, each
    room its own; a click opens the room; coming back closes them; a room open in a hidden tab
    notifies too."""
    writer = login(api, "happydaddy", "1234")
    angry = open_user("angrydaddy", "1234", sign_in=False)
    angry.context.add_init_script(NOTIFICATION_SPY)
    angry.sign_in()
    page = angry.page
    assert page.evaluate("Notification.permission") == "default"
    expect(angry.tid("notify-prompt")).to_have_count(0)

    boards = [
        api.post("/boards", json={"title": unique(t)}, headers=auth(writer)).json()
        for t in ("Tennis doubles ", "Board games ")
    ]
    first_room = angry.apply_and_open_room(boards[0]["title"])
    second_room = angry.apply_and_open_room(boards[1]["title"])
    expect(angry.tid("notify-prompt")).to_have_count(0)  # nothing written yet
    angry.send("anyone up for board games on Friday?")
    prompt = angry.tid("notify-prompt")
    expect(prompt).to_be_visible()
    angry.axe("notify-prompt-en-light-desktop")
    angry.shot("77-notify-prompt")
    angry.context.grant_permissions(["notifications"], origin=base_url)
    prompt.get_by_test_id("notify-prompt-yes").click()
    expect(angry.tid("notify-enabled")).to_be_visible()
    expect(prompt).to_have_count(0)

    # Away from the rooms, the tab hidden: three messages in one room are one notification.
    angry.tid("nav-chats").click()
    expect(angry.tid("chats-view")).to_be_visible()
    page.evaluate("window.__setHidden(true)")
    send_messages(base_url, writer, first_room, ["6pm works?", "court 3", "bring balls"])
    angry.tid("bell-button").click()
    entry = page.locator(f'[data-testid="bell-item-message"][data-room-id="{first_room}"]')
    expect(entry.get_by_test_id("bell-item-count")).to_have_text("3 new")
    shown = notifications(angry)
    assert [(n["title"], n["body"], n["tag"]) for n in shown] == [
        ("happydaddy wrote", "6pm works?", f"duochat-room-{first_room}")
    ]
    # Another room is another notification, in Korean once the app speaks it.
    angry.tid("account-button").click()
    angry.tid("locale-ko").click()
    page.keyboard.press("Escape")
    send_messages(base_url, writer, second_room, ["Friday it is"])
    page.wait_for_function("() => window.__notifications.length === 2")
    assert notifications(angry)[1]["title"] == "happydaddy님의 메시지"
    assert notifications(angry)[1]["body"] == "Friday it is"

    # Clicking the first one opens its room.
    page.evaluate("window.__notificationObjects[0].dispatchEvent(new Event('click'))")
    expect(page).to_have_url(re.compile(f"/room/{first_room}$"))
    assert notifications(angry)[0]["closed"]

    # Back in the tab: the rest close. Then hidden again with the room open (the server
    # counts angrydaddy as in the room and rings no bell): the room itself notifies.
    page.evaluate("window.__setHidden(false)")
    page.wait_for_function("() => window.__notifications.every((n) => n.closed)")
    angry.wait_room()
    page.evaluate("window.__setHidden(true)")
    send_messages(base_url, writer, first_room, ["still on for 6?"])
    page.wait_for_function("() => window.__notifications.length === 3")
    assert notifications(angry)[2]["body"] == "still on for 6?"
    page.evaluate("window.__setHidden(false)")


@pytest.mark.parametrize(
    ("locale", "title"), [("en-US", "{name} wrote"), ("ko-KR", "{name}님의 메시지")]
)
def test_a_muted_room_makes_no_browser_notification_but_still_counts(
    open_user, api, base_url, locale, title
):
    """The tab hidden, a message in a muted room makes no notification (from the bell's
    stream, or from the room open in that tab) while one in an unmuted room does; the muted
    room's unread count still goes up. In English and in Korean."""
    writer_name, writer = new_user(api, "w")
    reader_name, reader = new_user(api, "r")
    quiet, loud = (
        apply(api, reader, post_board(api, writer, unique(t))["id"]) for t in ("Yoga ", "Karaoke ")
    )
    user = open_user(reader_name, STRONG_PASSWORD, sign_in=False, locale=locale)
    user.context.add_init_script(NOTIFICATION_SPY)
    user.context.grant_permissions(["notifications"], origin=base_url)
    user.sign_in()
    page = user.page
    assert page.evaluate("Notification.permission") == "granted"

    # Muted from the room's menu.
    user.open_room_from_chats(quiet)
    user.tid("room-options").click()
    user.tid("room-mute").click()
    expect(user.tid("room-muted")).to_be_visible()
    user.tid("nav-chats").click()
    expect(user.tid(f"room-item-{quiet}").get_by_test_id("room-item-muted")).to_be_visible()

    # Away from both rooms: the muted one first, then the other. Only the other notifies.
    page.evaluate("window.__setHidden(true)")
    send_messages(base_url, writer, quiet, ["yoga at 7?"])
    send_messages(base_url, writer, loud, ["karaoke tonight?"])
    page.wait_for_function("() => window.__notifications.length >= 1")
    expect(user.tid(f"room-item-{loud}").get_by_test_id("room-item-unread")).to_have_text("1")
    expect(user.tid(f"room-item-{quiet}").get_by_test_id("room-item-unread")).to_have_text("1")
    assert [(n["title"], n["body"], n["tag"]) for n in notifications(user)] == [
        (title.format(name=writer_name), "karaoke tonight?", f"duochat-room-{loud}")
    ]
    user.axe(f"chats-muted-{locale[:2]}-light-desktop")
    user.shot(f"85-chats-muted-{locale[:2]}-light-desktop")

    # The muted room open in the hidden tab: still nothing from it; the other one notifies.
    page.evaluate("window.__setHidden(false)")
    user.open_room_from_chats(quiet)
    page.evaluate("window.__setHidden(true)")
    send_messages(base_url, writer, quiet, ["or at 8?"])
    expect(page.get_by_test_id("line-text").last).to_have_text("or at 8?")
    send_messages(base_url, writer, loud, ["room 4"])
    page.wait_for_function("() => window.__notifications.length >= 2")
    page.wait_for_timeout(500)  # time for a wrong one to follow
    assert [n["tag"] for n in notifications(user)] == [f"duochat-room-{loud}"] * 2
    page.evaluate("window.__setHidden(false)")
    # Muted, not forgotten: the room's messages are all there, and counted until read.
    assert api.get("/chat/rooms/unread", headers=auth(reader)).json()[loud] == 2


@pytest.mark.parametrize(
    ("theme", "locale"), [("light", "ko-KR"), ("dark", "en-US")], ids=["light-ko", "dark-en"]
)
def test_every_screen_in_each_theme(open_user, api, base_url, theme, locale):
    """Every screen once more, in the theme and language the walk above did not give it (it
    went English-light and Korean-dark): axe with no serious or critical violation, and a
    screenshot of each under artifacts/screenshots/ named by language and theme."""
    dark = theme == "dark"
    lang = locale[:2]
    writer_name, writer = new_user(api, "w")
    name, token = new_user(api, "v")
    board = post_board(api, writer, unique("Morning run "))
    room = apply(api, token, board["id"])
    send_messages(base_url, writer, room, ["6am at the river?"])
    mine = post_board(api, token, unique("Study group "))
    apply(api, writer, mine["id"])
    user = open_user(name, STRONG_PASSWORD, sign_in=False, dark=dark, locale=locale)

    def screen(number: int, what: str, include: str | None = None) -> None:
        user.axe(f"{what}-{lang}-{theme}-desktop", include=include)
        user.shot(f"9{number}-{what}-{lang}-{theme}-desktop")

    user.page.goto("/")
    expect(user.tid("login-view")).to_be_visible()
    expect(user.page.locator("html")).to_have_attribute("data-bs-theme", theme)
    expect(user.page.locator("html")).to_have_attribute("lang", lang)
    screen(0, "landing")
    user.sign_in()
    screen(1, "boards")
    user.page.goto(f"/board/{mine['id']}")
    expect(user.tid(f"applicant-{writer_name}")).to_be_visible()
    screen(2, "board")
    user.tid(f"applicant-{writer_name}").get_by_test_id("applicant-match").click()
    expect(user.tid("match-confirm")).to_be_visible()
    screen(3, "match-confirm")
    user.page.keyboard.press("Escape")
    user.tid("nav-chats").click()
    expect(user.tid(f"room-item-{room}")).to_be_visible()
    screen(4, "chats")
    user.tid("bell-button").click()
    expect(user.tid("bell-menu")).to_be_visible()
    screen(5, "bell", include="[data-testid=bell-menu]")
    user.page.keyboard.press("Escape")
    user.open_room_from_chats(room)
    expect(user.page.get_by_test_id("line-text").last).to_have_text("6am at the river?")
    screen(6, "room")
    theirs = user.page.locator('[data-testid="line-talk"][data-mine="false"]').last
    theirs.locator(".bubble").click()
    user.tid("line-report").click()
    expect(user.tid("report-dialog")).to_be_visible()
    screen(7, "report-dialog")
    user.page.keyboard.press("Escape")
    user.tid("account-button").click()
    expect(user.tid("account-menu")).to_be_visible()
    screen(8, "account-menu", include="#account-menu")
    user.tid("account-blocked").click()
    expect(user.tid("blocked-empty")).to_be_visible()
    screen(9, "blocked")
