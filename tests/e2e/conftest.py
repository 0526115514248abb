"""Browser tests: the built web app against a real backend, driven in Debian's Chromium.

The session starts its own embedded server (all four services plus ``web/dist``) on a free port
with a throwaway data folder. Set ``DUOCHAT_E2E_BASE_URL`` to test a server that is already
running instead (for example the gateway of ``make services``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from duochat_embedded.process import EmbeddedProcess

from .helpers import User
from .netcut import NetCut

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "web" / "dist" / "index.html"
ARTIFACTS = ROOT / "artifacts"
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


# Notifications travel through the event pipeline; give a busy CI machine some slack.
expect.set_options(timeout=10_000)


@pytest.fixture(scope="session")
def server_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded server's data folder (its SQLite files)."""
    return tmp_path_factory.mktemp("duochat-data")


@pytest.fixture
def chat_db(server_data: Path) -> Path:
    """The chat service's SQLite file, for a test that must age messages (day dividers): only
    the server this session starts has one."""
    if os.environ.get("DUOCHAT_E2E_BASE_URL"):
        pytest.fail("this test changes stored messages: run it without DUOCHAT_E2E_BASE_URL")
    return server_data / "chat.db"


@pytest.fixture(scope="session")
def base_url(server_data: Path) -> Iterator[str]:
    external = os.environ.get("DUOCHAT_E2E_BASE_URL")
    if external:
        yield external.rstrip("/")
        return
    if not DIST.is_file():
        pytest.fail(
            "web/dist is missing: build the web app first with "
            "`npm ci --prefix web && npm run build --prefix web`"
        )
    ARTIFACTS.mkdir(exist_ok=True)
    server = EmbeddedProcess(
        data_dir=server_data,
        log=ARTIFACTS / "e2e-server.log",
        # Every browser test signs people up from this one address; auth's own tests cover
        # the per-address limit.
        env={"DUOCHAT_REGISTER_MAX_PER_ADDRESS": "1000"},
    )
    try:
        server.start()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield server.url
    finally:
        server.close()


@pytest.fixture
def fresh_base_url(tmp_path: Path) -> Iterator[str]:
    """A server of its own, just installed (no boards yet), for a first visit. Not available
    against DUOCHAT_E2E_BASE_URL."""
    if os.environ.get("DUOCHAT_E2E_BASE_URL"):
        pytest.fail("this test needs a fresh install: run it without DUOCHAT_E2E_BASE_URL")
    ARTIFACTS.mkdir(exist_ok=True)
    server = EmbeddedProcess(data_dir=tmp_path, log=ARTIFACTS / "e2e-fresh-server.log")
    try:
        server.start()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield server.url
    finally:
        server.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists() and not shutil.which(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def open_user(browser: Browser, base_url: str, request: pytest.FixtureRequest):
    """open_user(name, password, phone=False) -> a signed-in User in its own browser context.

    Every page is watched for console errors and uncaught exceptions; the test fails at teardown
    if any appeared (unless the test allowed a known pattern through ``user.allow_console``).
    """
    users: list[User] = []

    def _open(
        username: str,
        password: str,
        *,
        phone: bool = False,
        sign_in: bool = True,
        via: str | None = None,
        locale: str = "en-US",
        dark: bool = False,
    ) -> User:
        """``via``: another address of the server (a NetCut proxy's) for this browser;
        ``locale``: the browser's language; ``dark``: it prefers a dark colour scheme."""
        user = User.open(
            browser, via or base_url, username, password, phone=phone, locale=locale, dark=dark
        )
        users.append(user)
        if sign_in:
            user.sign_in()
        return user

    yield _open
    problems = []
    for user in users:
        problems += [f"{user.username}: {p}" for p in user.console_problems()]
        user.close()
    assert not problems, "console errors in the browser:\n" + "\n".join(problems)


@pytest.fixture
def netcut(base_url: str) -> Iterator[Callable[[], NetCut]]:
    """netcut() -> a NetCut proxy to the server, closed after the test."""
    proxies: list[NetCut] = []

    def _make() -> NetCut:
        port = urlsplit(base_url).port
        assert port, base_url
        proxy = NetCut(port, urlsplit(base_url).hostname or "127.0.0.1")
        proxies.append(proxy)
        return proxy

    yield _make
    for proxy in proxies:
        proxy.close()


@pytest.fixture
def api(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=10) as client:
        yield client
