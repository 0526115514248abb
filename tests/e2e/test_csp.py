"""The Content-Security-Policy holds the whole app (issue 12, finding 11): the page is served
with it, every screen of the story (sign-in, boards, a room over STOMP, live notifications over
SSE) runs with no violation and no console error, and an injected inline script is refused."""

from __future__ import annotations

import pytest
from playwright.sync_api import Error, expect

from duochat_common.secheaders import SECURITY_HEADERS

from .helpers import unique

WATCH_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) =>
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
"""


def test_the_app_runs_under_its_csp_with_no_violation(open_user, base_url):
    writer = open_user("happydaddy", "1234", sign_in=False)
    applicant = open_user("angrydaddy", "1234", sign_in=False)
    for user in (writer, applicant):
        user.context.add_init_script(WATCH_VIOLATIONS)
        response = user.page.goto("/login")
        assert response is not None
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name.lower()) == value, name
        user.sign_in()

    title = unique("csp board ")
    writer.create_board(title, "under a strict policy")
    room = applicant.apply_and_open_room(title)
    applicant.send("hello under CSP")
    # The writer sees it live: a notification (SSE) and then the room (STOMP over WebSocket).
    writer.open_room_from_chats(room)
    expect(writer.page.get_by_text("hello under CSP")).to_be_visible()
    writer.send("and back")
    expect(applicant.page.get_by_text("and back")).to_be_visible()

    for user in (writer, applicant):
        assert user.page.evaluate("window.__cspViolations") == []
    # console errors (a CSP violation is one) fail the test at teardown (open_user)


def test_an_injected_inline_script_is_refused(open_user):
    user = open_user("happydaddy", "1234")
    user.allow_console(r"Content Security Policy")
    with pytest.raises(Error):
        user.page.add_script_tag(content="window.__injected = true")
    assert user.page.evaluate("window.__injected === undefined")
