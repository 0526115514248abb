"""The embedded server as an attacker meets it (issue 12): missing files are 404s (finding 9),
every response carries the browser security headers (11), slow clients are cut off (12), and
production mode is refused while listening beyond loopback is warned about (13)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from duochat_common.secheaders import SECURITY_HEADERS
from duochat_embedded.__main__ import is_loopback
from duochat_embedded.localstack import free_port
from duochat_embedded.process import EmbeddedProcess
from tests.integration.flows import login

TIMEOUT_S = 2.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedProcess]:
    tmp = tmp_path_factory.mktemp("embedded-security")
    (tmp / "data").mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DUOCHAT_HEADER_TIMEOUT_SECONDS", str(TIMEOUT_S))
        patch.setenv("DUOCHAT_BODY_TIMEOUT_SECONDS", str(TIMEOUT_S))
        process = EmbeddedProcess(data_dir=tmp / "data", log=tmp / "embedded.log")
        process.start()
    try:
        yield process
    finally:
        process.close()


@pytest.mark.parametrize(
    "path",
    [
        "/robots.txt",
        "/favicon.ico",
        "/assets/missing.js",
        "/deep/path/file.css",
        "/a%00.js",
    ],
)
def test_a_missing_file_is_404(server: EmbeddedProcess, path: str) -> None:
    reply = httpx.get(server.url + path)
    assert reply.status_code == 404, reply.text
    assert reply.json()["code"] == "not_found"


def test_odd_paths_are_never_a_5xx(server: EmbeddedProcess) -> None:
    for path in ("/%00", "/%00/x", "/..%2F..%2Fetc%2Fpasswd", "/%C2%B2.js", "/" + "a" * 4000):
        assert httpx.get(server.url + path).status_code < 500, path


def test_a_client_side_route_is_the_app(server: EmbeddedProcess) -> None:
    reply = httpx.get(server.url + "/chats/some-room")
    assert reply.status_code == 200
    assert '<div id="app">' in reply.text


def test_writing_to_a_static_file_is_405_not_500(server: EmbeddedProcess) -> None:
    assert httpx.post(server.url + "/index.html").status_code == 405


@pytest.mark.parametrize(
    "path", ["/", "/chats", "/robots.txt", "/auth/.well-known/jwks.json", "/healthz"]
)
def test_every_response_carries_the_security_headers(server: EmbeddedProcess, path: str) -> None:
    reply = httpx.get(server.url + path)
    for name, value in SECURITY_HEADERS.items():
        assert reply.headers.get(name) == value, (path, name)
    assert "frame-ancestors 'none'" in reply.headers["Content-Security-Policy"]


def test_assets_carry_them_too(server: EmbeddedProcess) -> None:
    index = httpx.get(server.url + "/").text
    asset = index.split('src="', 1)[1].split('"', 1)[0]
    reply = httpx.get(server.url + asset)
    assert reply.status_code == 200
    assert reply.headers["X-Content-Type-Options"] == "nosniff"


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes ``sock`` within ``seconds`` (reads until EOF or the time)."""
    sock.settimeout(0.2)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if sock.recv(4096) == b"":
                return True
        except TimeoutError:
            continue
        except ConnectionResetError:
            return True
    return False


def _connect(server: EmbeddedProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=5)


def test_a_connection_that_sends_nothing_is_closed(server: EmbeddedProcess) -> None:
    with _connect(server) as sock:
        assert _closed_within(sock, TIMEOUT_S + 3)


def test_headers_that_trickle_in_are_cut_off(server: EmbeddedProcess) -> None:
    # Finding 12: 200 sockets sending one header line every 9 s stayed open for 46 s.
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        closed = False
        for n in range(int(TIMEOUT_S * 4) + 8):
            try:
                sock.sendall(f"X-Slow-{n}: y\r\n".encode())
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if _closed_within(sock, 0.5):
                closed = True
                break
        assert closed
        assert time.monotonic() - started < TIMEOUT_S + 3


def test_a_body_that_trickles_in_is_cut_off(server: EmbeddedProcess) -> None:
    with _connect(server) as sock:
        sock.sendall(
            b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n{"
        )
        assert _closed_within(sock, TIMEOUT_S + 3)


def test_a_prompt_request_on_a_kept_alive_connection_is_served(server: EmbeddedProcess) -> None:
    with httpx.Client(base_url=server.url) as client:
        for _ in range(3):
            assert client.get("/healthz").status_code == 200
            time.sleep(TIMEOUT_S / 2)


def test_an_sse_stream_outlives_the_read_timeouts(server: EmbeddedProcess) -> None:
    # Sync on purpose: this module runs after the Playwright (sync API) suites, whose loop
    # leaves pytest-asyncio unable to run a coroutine test in this thread.
    with httpx.Client(base_url=server.url, timeout=httpx.Timeout(10, read=None)) as http:
        token = http.post(
            "/auth/login", json={"username": "happydaddy", "password": "1234"}
        ).json()["accessToken"]
        ticket = http.post("/notify/ticket", headers={"Authorization": f"Bearer {token}"}).json()[
            "ticket"
        ]
        with http.stream("GET", "/notify/stream", params={"ticket": ticket}) as stream:
            assert stream.status_code == 200
            lines = stream.iter_lines()
            assert next(lines).startswith(":")
            time.sleep(TIMEOUT_S + 1.5)
            assert not stream.is_closed


def test_production_mode_is_refused(tmp_path: Path) -> None:
    # Finding 13: DUOCHAT_ENVIRONMENT=production seeded the demo accounts.
    env = {**os.environ, "DUOCHAT_ENVIRONMENT": "production"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "duochat_embedded",
            "--port",
            str(free_port()),
            "--data-dir",
            str(tmp_path / "data"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "production" in done.stderr
    assert not (tmp_path / "data" / "auth.db").exists()  # nothing was seeded


def test_listening_beyond_loopback_is_warned_about(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "duochat_embedded",
            "--host",
            "0.0.0.0",
            "--port",
            str(free_port()),
            "--data-dir",
            str(tmp_path / "data"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        seen = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            seen.append(line)
            if "beyond this machine" in line or "duochat embedded:" in line or not line:
                break
        assert any("beyond this machine" in line for line in seen), "".join(seen)
    finally:
        proc.terminate()
        proc.wait(20)


def test_loopback_hosts() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")


def test_demo_sign_in_still_works(server: EmbeddedProcess) -> None:
    with httpx.Client(base_url=server.url) as client:
        assert login(client, "happydaddy", "1234")
