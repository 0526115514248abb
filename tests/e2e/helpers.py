"""One person at a browser: a Playwright context and page, with the app's common moves."""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, Page, expect

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
AXE_RESULTS = ROOT / "artifacts" / "axe"
# axe-core from npm (web/package.json devDependencies), injected into the page under test.
AXE_SCRIPT = ROOT / "web" / "node_modules" / "axe-core" / "axe.min.js"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1280, "height": 860}}
STRONG_PASSWORD = "Run-partner-2026!"


def unique(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(3)}"


@dataclass
class User:
    username: str
    password: str
    base_url: str
    context: BrowserContext
    page: Page
    console: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    @classmethod
    def open(
        cls,
        browser: Browser,
        base_url: str,
        username: str,
        password: str,
        *,
        phone: bool,
        locale: str = "en-US",
        dark: bool = False,
    ) -> User:
        """``locale``: the browser's language (Accept-Language and navigator.languages);
        ``dark``: the system prefers a dark colour scheme."""
        context = browser.new_context(
            base_url=base_url,
            locale=locale,
            color_scheme="dark" if dark else "light",
            # No transitions: axe must not measure a colour halfway through one.
            reduced_motion="reduce",
            **(PHONE if phone else DESKTOP),
        )
        context.set_default_timeout(10_000)
        page = context.new_page()
        user = cls(username, password, base_url, context, page)
        page.on(
            "console",
            lambda m: (
                user.console.append(f"{m.text} ({m.location.get('url', '')})")
                if m.type == "error"
                else None
            ),
        )
        page.on("pageerror", lambda e: user.console.append(f"uncaught: {e}"))

        # An alert() would mean some text ran as HTML: record it, then dismiss it.
        def on_dialog(d):
            user.dialogs.append(d.message)
            d.dismiss()

        page.on("dialog", on_dialog)
        return user

    def allow_console(self, pattern: str) -> None:
        """Let console errors matching ``pattern`` through (for deliberate failures)."""
        self.allowed.append(re.compile(pattern))

    def console_problems(self) -> list[str]:
        bad = [c for c in self.console if not any(p.search(c) for p in self.allowed)]
        return bad + [f"dialog opened: {d}" for d in self.dialogs]

    def close(self) -> None:
        self.context.close()

    def shot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=False)

    def tid(self, test_id: str):
        return self.page.get_by_test_id(test_id)

    def axe(self, name: str, *, include: str | None = None) -> list[dict[str, Any]]:
        """Runs axe-core on the page (or the part ``include`` selects) against WCAG 2.2 A/AA
        and best practice; saves the results under artifacts/axe/<name>.json and fails on any
        serious or critical violation. Returns every violation (of any impact)."""
        if not self.page.evaluate("typeof window.axe === 'object'"):
            # Evaluated over the DevTools protocol: the page's CSP does not apply to it.
            self.page.evaluate(AXE_SCRIPT.read_text())
        result = self.page.evaluate(
            """async ([include, tags]) => {
                const r = await axe.run(include ? { include: [include] } : document, {
                    runOnly: { type: 'tag', values: tags },
                    resultTypes: ['violations'],
                })
                return r.violations.map((v) => ({
                    id: v.id, impact: v.impact, help: v.help,
                    nodes: v.nodes.map((n) => ({ target: n.target, summary: n.failureSummary })),
                }))
            }""",
            [include, AXE_TAGS],
        )
        AXE_RESULTS.mkdir(parents=True, exist_ok=True)
        (AXE_RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2))
        bad = [v for v in result if v["impact"] in ("serious", "critical")]
        assert not bad, f"axe on {name}: " + json.dumps(bad, indent=2)[:4000]
        return result

    # --- moves -----------------------------------------------------------------------------

    def sign_in(self) -> None:
        self.page.goto("/login")
        self.tid("login-username").fill(self.username)
        self.tid("login-password").fill(self.password)
        self.tid("login-submit").click()
        expect(self.tid("boards-view")).to_be_visible()
        expect(self.tid("stomp-connected")).to_be_visible()

    def register(self) -> None:
        self.page.goto("/login")
        self.tid("tab-register").click()
        self.tid("login-username").fill(self.username)
        self.tid("login-password").fill(self.password)
        self.tid("login-submit").click()
        expect(self.tid("boards-view")).to_be_visible()

    def create_board(self, title: str, content: str = "") -> str:
        """Posts a board and returns its id."""
        self.tid("nav-boards").click()
        self.tid("board-new").click()
        self.tid("board-form-title").fill(title)
        self.tid("board-form-content").fill(content)
        self.tid("board-form-submit").click()
        card = self.board_card(title)
        expect(card).to_be_visible()
        return card.get_attribute("data-testid").removeprefix("board-")

    def board_card(self, title: str):
        return self.page.locator("[data-board-card]").filter(
            has=self.page.get_by_test_id("board-title").get_by_text(title, exact=True)
        )

    def search_board(self, title: str):
        self.tid("nav-boards").click()
        self.tid("board-search").fill(title)
        # Wait for this search's results, not the unfiltered list that showed first.
        expect(self.tid("board-list")).to_have_attribute("data-shown", f"open|{title}")
        card = self.board_card(title)
        expect(card).to_be_visible()
        return card

    def apply_and_open_room(self, title: str) -> str:
        """Applies to a board found by title, opens the room, and returns its id."""
        card = self.search_board(title)
        card.get_by_test_id("board-apply").click()
        card.get_by_test_id("board-open-chat").click()
        return self.wait_room()

    def wait_room(self) -> str:
        room = self.tid("room-view")
        expect(room).to_be_visible()
        expect(self.tid("message-input")).to_be_enabled()
        return room.get_attribute("data-room-id")

    def wait_room_readonly(self) -> str:
        """A room that takes no more messages (left, blocked, closed): returns its id."""
        room = self.tid("room-view")
        expect(room).to_be_visible()
        expect(self.tid("room-readonly")).to_be_visible()
        expect(self.tid("message-input")).to_be_disabled()
        return room.get_attribute("data-room-id")

    def open_room_from_chats(self, room_id: str) -> None:
        self.tid("nav-chats").click()
        self.tid(f"room-item-{room_id}").click()
        self.wait_room()

    def send(self, text: str) -> None:
        """Types a message, sends it with Enter, and waits for its receipt."""
        box = self.tid("message-input")
        box.fill(text)
        box.press("Enter")
        line = self.my_line(text)
        expect(line).to_have_attribute("data-status", "delivered")

    def my_line(self, text: str):
        return self.page.locator('[data-testid="line-talk"][data-mine="true"]').filter(
            has=self.page.get_by_test_id("line-text").get_by_text(text, exact=True)
        )

    def talk_texts(self) -> list[str]:
        return self.page.get_by_test_id("line-text").all_inner_texts()

    def bell_count(self) -> int:
        badge = self.tid("bell-badge")
        return int(badge.inner_text()) if badge.count() else 0

    def expect_bell(self, count: int) -> None:
        if count:
            expect(self.tid("bell-badge")).to_have_text(str(count))
        else:
            expect(self.tid("bell-badge")).to_have_count(0)

    def sign_out(self) -> None:
        self.tid("account-button").click()
        self.tid("sign-out").click()
        expect(self.tid("login-view")).to_be_visible()

    def leave_room(self) -> None:
        self.tid("room-back").click()
        expect(self.tid("chats-view")).to_be_visible()


def pair_in_room(writer: User, applicant: User, title: str | None = None) -> str:
    """writer posts a board, applicant applies, both end up in the room; returns its id."""
    title = title or unique("Study mate ")
    writer.create_board(title)
    room_id = applicant.apply_and_open_room(title)
    writer.open_room_from_chats(room_id)
    expect(writer.tid("presence-here")).to_be_visible()
    return room_id
