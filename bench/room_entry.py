"""Room entry: the time from clicking a room until a message sent there is stored (its RECEIPT).

The old app connected a socket per room, and its users felt it. This drives the real web app in
Chromium against a real server: from the chats list, click the room, wait until the message box
is usable, send a message with Enter, and stop the clock when the message shows as delivered (the
server's RECEIPT arrived). The clock runs inside the page (performance.now() and a
MutationObserver), so Playwright's own round trips are not counted.

    .venv/bin/python -m bench.room_entry               # starts an embedded server
    .venv/bin/python -m bench.room_entry --base-url http://127.0.0.1:8080

The median and p90 are printed and written to this benchmark's section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect, sync_playwright

from bench.results import RESULTS
from bench.results import record as record_section
from duochat_embedded.process import EmbeddedProcess

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("DUOCHAT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Runs in the page: click the room, wait for a usable message box, send, wait for the receipt.
ENTER_AND_SEND = """
async ({ roomId, text }) => {
  const until = (check) => new Promise((resolve, reject) => {
    const found = check()
    if (found) return resolve(found)
    const timer = setTimeout(() => { obs.disconnect(); reject(new Error('timed out')) }, 10000)
    const obs = new MutationObserver(() => {
      const hit = check()
      if (hit) { obs.disconnect(); clearTimeout(timer); resolve(hit) }
    })
    obs.observe(document.body, { subtree: true, childList: true, attributes: true,
                                 characterData: true })
  })
  const item = document.querySelector(`[data-testid="room-item-${roomId}"]`)
  const t0 = performance.now()
  item.click()
  const input = await until(() => {
    const el = document.querySelector('[data-testid="message-input"]')
    return el && !el.disabled ? el : null
  })
  const ready = performance.now() - t0
  input.value = text
  input.dispatchEvent(new Event('input', { bubbles: true }))
  input.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true }))
  await until(() => [...document.querySelectorAll(
      '[data-testid="line-talk"][data-mine="true"][data-status="delivered"]')]
    .find((line) => line.textContent.includes(text)))
  const delivered = performance.now() - t0
  const history = document.querySelector('[data-testid="history-start"],[data-testid="load-older"]')
  return { ready, delivered, historyShown: Boolean(history) }
}
"""


@contextmanager
def embedded_server() -> Iterator[str]:
    if not (ROOT / "web" / "dist" / "index.html").is_file():
        sys.exit("web/dist is missing: run `npm ci --prefix web && npm run build --prefix web`")
    with tempfile.TemporaryDirectory(prefix="duochat-bench-") as data:
        server = EmbeddedProcess(data_dir=Path(data) / "data", log=Path(data) / "server.log")
        try:
            server.start()
        except RuntimeError as exc:
            sys.exit(str(exc))
        try:
            yield server.url
        finally:
            server.close()


def make_room(base_url: str) -> str:
    """happydaddy's board, angrydaddy's application: the room the bench enters."""
    with httpx.Client(base_url=base_url, timeout=10) as api:

        def token(name: str) -> str:
            res = api.post("/auth/login", json={"username": name, "password": "1234"})
            res.raise_for_status()
            return res.json()["accessToken"]

        writer = {"Authorization": f"Bearer {token('happydaddy')}"}
        applicant = {"Authorization": f"Bearer {token('angrydaddy')}"}
        title = f"Room entry bench {secrets.token_hex(3)}"
        board = api.post("/boards", json={"title": title}, headers=writer)
        board.raise_for_status()
        room = api.post(f"/boards/{board.json()['id']}/apply", headers=applicant)
        room.raise_for_status()
        return room.json()["roomId"]


def sign_in(page: Page) -> None:
    page.goto("/login")
    page.get_by_test_id("login-username").fill("happydaddy")
    page.get_by_test_id("login-password").fill("1234")
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("stomp-connected")).to_be_visible(timeout=15_000)


def to_chats(page: Page, room_id: str) -> None:
    page.get_by_test_id("nav-chats").click()
    expect(page.get_by_test_id(f"room-item-{room_id}")).to_be_visible()
    page.wait_for_timeout(150)  # let the list's own loads settle; they are not room entry


def measure(base_url: str, entries: int) -> list[dict]:
    room_id = make_room(base_url)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 860})
        context.set_default_timeout(15_000)
        page = context.new_page()
        sign_in(page)
        runs = []
        for i in range(entries + 1):  # the first entry warms up and is not counted
            to_chats(page, room_id)
            result = page.evaluate(ENTER_AND_SEND, {"roomId": room_id, "text": f"bench {i}"})
            if i:
                runs.append(result)
                print(
                    f"entry {i:2d}: usable {result['ready']:6.1f} ms, "
                    f"delivered {result['delivered']:6.1f} ms",
                    flush=True,
                )
        browser.close()
    return runs


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def record(runs: list[dict], target: str) -> str:
    delivered = [r["delivered"] for r in runs]
    ready = [r["ready"] for r in runs]
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    verdict = "meets" if statistics.median(delivered) < 300 else "misses"
    section = f"""
## Room entry (web app) - {now}

Click a room in the chats list, send a message with Enter, stop when its RECEIPT has arrived
(`bench/room_entry.py`, Chromium headless, {len(runs)} entries after one warm-up, one STOMP
connection for the session).

| from the click until | median | p90 | min | max |
|---|---|---|---|---|
| the message box is usable | {statistics.median(ready):.1f} ms | {percentile(ready, 0.9):.1f} ms | {min(ready):.1f} ms | {max(ready):.1f} ms |
| the message is delivered | {statistics.median(delivered):.1f} ms | {percentile(delivered, 0.9):.1f} ms | {min(delivered):.1f} ms | {max(delivered):.1f} ms |

Target: {target}. Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python \
{platform.python_version()}. The aim is a median under 300 ms locally: this run {verdict} it.
"""  # noqa: E501
    record_section("room_entry", section)
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="a running server; default: start an embedded one")
    parser.add_argument("--entries", type=int, default=20)
    parser.add_argument("--no-record", action="store_true", help="do not touch bench/RESULTS.md")
    args = parser.parse_args()

    if args.base_url:
        runs = measure(args.base_url.rstrip("/"), args.entries)
        target = f"a running server at {args.base_url}"
    else:
        with embedded_server() as url:
            runs = measure(url, args.entries)
        target = "the embedded server (`python -m duochat_embedded`, SQLite, in-process Redis)"
    delivered = [r["delivered"] for r in runs]
    print(
        f"room entry, click -> delivered: median {statistics.median(delivered):.1f} ms, "
        f"p90 {percentile(delivered, 0.9):.1f} ms over {len(runs)} entries"
    )
    if not args.no_record:
        record(runs, target)
        print(f"recorded in {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
