"""The nginx gateway, run for real: it must route every path exactly as the ALB rules
(``route_for``) do, upgrade WebSockets, stream SSE unbuffered and carry the request id."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from duochat_common import gateway
from duochat_common.routing import INTERNAL_PATHS, ROUTES, WEB_SERVICE, route_for
from duochat_common.secheaders import SECURITY_HEADERS

REPO = Path(__file__).resolve().parents[2]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SSE_GAP_S = 2.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sample_paths() -> list[str]:
    """A path for every pattern of every route, plus near misses that only `/*` matches."""
    paths = ["/", "/index.html", "/some/client/route", "/authx", "/chat", "/notify", "/boardsx"]
    for route in ROUTES:
        for pattern in route.paths:
            paths.append(pattern.replace("*", "x/y").replace("?", "z"))
            paths.append(pattern.replace("/*", "/").replace("*", ""))
        paths += list(route.sse_paths)
    return sorted(set(paths))


def make_handler(service: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if self.headers.get("Upgrade", "").lower() == "websocket":
                self._tunnel()
            elif self.path.startswith("/notify/stream"):
                self._stream()
            else:
                body = json.dumps(
                    {"service": service, "path": self.path, "headers": dict(self.headers)}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                # Like every duochat service (RequestIdMiddleware), echo the request id.
                self.send_header("X-Request-ID", self.headers.get("X-Request-ID", ""))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        def _stream(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"data: first\n\n")
            self.wfile.flush()
            time.sleep(SSE_GAP_S)
            self.wfile.write(b"data: second\n\n")
            self.wfile.flush()
            self.close_connection = True

        def _tunnel(self) -> None:
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("X-Seen-Connection", self.headers.get("Connection", ""))
            self.end_headers()
            self.wfile.flush()
            data = self.rfile.read1(1024)
            self.wfile.write(b"echo:" + data)
            self.wfile.flush()
            self.close_connection = True

    return Handler


class Gateway:
    def __init__(self, port: int, static_root: Path) -> None:
        self.port = port
        self.static_root = static_root

    def get(
        self, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()


@pytest.fixture(scope="module")
def running_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    if not os.path.exists(NGINX):
        pytest.fail("nginx is not installed (apt-get install -y nginx)")
    base = tmp_path_factory.mktemp("gateway")
    static_root = base / "dist"
    (static_root / "assets").mkdir(parents=True)
    (static_root / "index.html").write_text("<!doctype html><title>duochat spa</title>")
    (static_root / "assets" / "app-123.js").write_text("console.log('app')")

    servers = []
    upstreams = {}
    for route in ROUTES:
        server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(route.service))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        upstreams[route.service] = [f"127.0.0.1:{server.server_address[1]}"]

    port = free_port()
    run_dir = base / "run"
    (run_dir / "temp").mkdir(parents=True)
    conf = base / "nginx.conf"
    conf.write_text(
        gateway.render_nginx_conf(
            upstreams=upstreams,
            listen=port,
            static_root=str(static_root),
            pid_path=str(run_dir / "nginx.pid"),
            temp_dir=str(run_dir / "temp"),
            error_log=str(run_dir / "error.log"),
            access_log=str(run_dir / "access.log"),
            user="root" if os.geteuid() == 0 else None,
        )
    )
    process = subprocess.Popen(
        [NGINX, "-c", str(conf), "-p", str(run_dir), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    err = process.stderr.read().decode() if process.stderr else ""
                    pytest.fail(f"nginx did not start: {err}")
                time.sleep(0.05)
        yield Gateway(port, static_root)
    finally:
        process.terminate()
        process.wait(timeout=10)
        for server in servers:
            server.shutdown()


@pytest.mark.parametrize("path", sample_paths())
def test_routes_like_the_alb_rules(running_gateway: Gateway, path: str) -> None:
    route = route_for(path)
    status, _, body = running_gateway.get(path)
    assert status == 200, (path, body[:200])
    if route is None:
        assert b"duochat spa" in body or b"console.log" in body, (path, "expected web")
    elif path in route.sse_paths:
        assert body.startswith(b"data: first"), path
    else:
        served = json.loads(body)
        assert served["service"] == route.service, path
        assert served["path"] == path


@pytest.mark.parametrize("path", INTERNAL_PATHS)
def test_internal_paths_answer_404(running_gateway: Gateway, path: str) -> None:
    """/metrics is each service's own (Prometheus scrapes it there), not the SPA's fallback."""
    for asked in (path, f"{path}?x=1"):
        status, headers, body = running_gateway.get(asked)
        assert status == 404, (asked, body[:200])
        assert b"duochat spa" not in body
        assert headers["X-Frame-Options"] == "DENY"


def test_spa_fallback_and_assets(running_gateway: Gateway) -> None:
    _, headers, body = running_gateway.get("/rooms/42")
    assert b"duochat spa" in body and headers["Content-Type"].startswith("text/html")
    _, headers, body = running_gateway.get("/assets/app-123.js")
    assert body == b"console.log('app')"
    assert headers["Content-Type"] == "application/javascript"
    assert "immutable" in headers["Cache-Control"]


def test_request_id_is_kept_or_made(running_gateway: Gateway) -> None:
    _, headers, body = running_gateway.get("/auth/me", {"X-Request-ID": "abc-123"})
    assert json.loads(body)["headers"]["X-Request-ID"] == "abc-123"
    assert headers["X-Request-ID"] == "abc-123"
    _, headers, body = running_gateway.get("/boards")
    made = json.loads(body)["headers"]["X-Request-ID"]
    assert len(made) == 32 and headers["X-Request-ID"] == made


def test_forwarded_headers(running_gateway: Gateway) -> None:
    _, _, body = running_gateway.get("/boards", {"X-Forwarded-For": "203.0.113.7"})
    seen = json.loads(body)["headers"]
    assert seen["X-Forwarded-For"] == "203.0.113.7, 127.0.0.1"
    assert seen["X-Forwarded-Proto"] == "http"
    assert seen["Host"].startswith("127.0.0.1")


def test_sse_is_not_buffered(running_gateway: Gateway) -> None:
    sse_path = next(p for r in ROUTES for p in r.sse_paths)
    conn = http.client.HTTPConnection("127.0.0.1", running_gateway.port, timeout=10)
    try:
        started = time.monotonic()
        conn.request("GET", sse_path, headers={"Accept": "text/event-stream"})
        response = conn.getresponse()
        assert response.getheader("X-Accel-Buffering") == "no"
        first = response.read1(64)
        assert first.startswith(b"data: first")
        # It arrived while the upstream was still holding the second event back.
        assert time.monotonic() - started < SSE_GAP_S / 2
    finally:
        conn.close()


def test_websocket_upgrade_is_tunnelled(running_gateway: Gateway) -> None:
    ws_route = next(r for r in ROUTES if r.websocket)
    ws_path = next(p for p in ws_route.paths if "*" not in p)
    with socket.create_connection(("127.0.0.1", running_gateway.port), timeout=10) as sock:
        sock.sendall(
            (
                f"GET {ws_path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: v12.stomp\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(1024)
        status_line, _, rest = head.partition(b"\r\n")
        assert b" 101 " in status_line, head
        assert b"x-seen-connection: upgrade" in head.lower()
        sock.sendall(b"CONNECT")
        echoed = rest.partition(b"\r\n\r\n")[2]
        while b"echo:CONNECT" not in echoed:
            chunk = sock.recv(1024)
            assert chunk, echoed
            echoed += chunk


def test_local_conf_passes_nginx_t(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "temp").mkdir(parents=True)
    conf = tmp_path / "nginx.conf"
    conf.write_text(gateway.local_conf(static_root=str(tmp_path / "dist"), run_dir=str(run_dir)))
    result = subprocess.run(
        [NGINX, "-t", "-c", str(conf), "-p", str(run_dir)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_web_image_server_conf_passes_nginx_t(tmp_path: Path) -> None:
    # The web image includes deploy/web/default.conf inside nginx's http block.
    (tmp_path / "temp").mkdir()
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log stderr;\nevents {{}}\n"
        f"http {{\n  client_body_temp_path {tmp_path}/temp;\n  proxy_temp_path {tmp_path}/temp;\n"
        f"  include {REPO}/deploy/web/default.conf;\n}}\n"
    )
    result = subprocess.run(
        [NGINX, "-t", "-c", str(conf), "-p", str(tmp_path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_committed_compose_conf_is_fresh() -> None:
    committed = (REPO / gateway.COMPOSE_CONF).read_text()
    assert committed == gateway.compose_conf(), (
        "deploy/gateway/nginx.conf is stale: run "
        "`python -m duochat_common.gateway --mode compose --out deploy/gateway/nginx.conf`"
    )


def test_cli_writes_both_modes(tmp_path: Path) -> None:
    gateway.main(["--mode", "compose", "--out", str(tmp_path / "compose.conf")])
    assert (tmp_path / "compose.conf").read_text() == gateway.compose_conf()
    gateway.main(
        [
            "--mode",
            "local",
            "--out",
            str(tmp_path / "local.conf"),
            "--run-dir",
            str(tmp_path / "run"),
            "--static-root",
            str(tmp_path / "dist"),
        ]
    )
    local = (tmp_path / "local.conf").read_text()
    assert f'root "{tmp_path / "dist"}";' in local
    assert (tmp_path / "run" / "temp").is_dir()


def test_route_table_mismatch_is_refused() -> None:
    upstreams = {r.service: ["127.0.0.1:1"] for r in ROUTES}
    with pytest.raises(ValueError, match="no upstream"):
        gateway.render_nginx_conf(
            upstreams={k: v for k, v in upstreams.items() if k != "chat"}, listen=1, static_root="/"
        )
    with pytest.raises(ValueError, match="not in the route table"):
        gateway.render_nginx_conf(
            upstreams={**upstreams, WEB_SERVICE: ["x:1"]}, listen=1, static_root="/"
        )
    with pytest.raises(ValueError, match="web_upstream or static_root"):
        gateway.render_nginx_conf(upstreams=upstreams, listen=1)


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("/auth", "/auth", True),
        ("/auth", "/auth/", False),
        ("/auth/*", "/auth/", True),
        ("/auth/*", "/auth/a/b", True),
        ("/a.b/*", "/axb/c", False),
        ("/a?c", "/abc", True),
        ("/a+(b)", "/a+(b)", True),
    ],
)
def test_pattern_regex_matches_like_the_alb(pattern: str, path: str, expected: bool) -> None:
    import re

    assert bool(re.fullmatch(gateway.alb_pattern_to_regex(pattern), path)) is expected


# Issue 12, finding 11: the browser security headers, on what the gateway serves itself, what it
# proxies and what it streams, once each; and the web image's config carries the same ones.
@pytest.mark.parametrize("path", ["/", "/rooms/42", "/assets/app-123.js", "/boards", "/auth/me"])
def test_every_response_carries_the_security_headers(running_gateway: Gateway, path: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", running_gateway.port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get_all(name) == [value], (path, name)
    finally:
        conn.close()


def test_the_sse_stream_carries_the_security_headers(running_gateway: Gateway) -> None:
    sse_path = next(p for r in ROUTES for p in r.sse_paths)
    conn = http.client.HTTPConnection("127.0.0.1", running_gateway.port, timeout=10)
    try:
        conn.request("GET", sse_path)
        response = conn.getresponse()
        for name, value in SECURITY_HEADERS.items():
            assert response.getheader(name) == value, name
    finally:
        conn.close()


def test_the_web_image_sends_the_same_security_headers() -> None:
    text = (REPO / "deploy/web/default.conf").read_text()
    blocks = text.split("location ")
    with_own_headers = [b for b in blocks[1:] if "add_header" in b]
    for block in [blocks[0], *with_own_headers]:
        for name, value in SECURITY_HEADERS.items():
            assert f'add_header {name} "{value}" always;' in block, (block[:40], name)


def test_the_gateway_times_out_slow_clients() -> None:
    conf = gateway.compose_conf()
    assert f"client_header_timeout {gateway.CLIENT_HEADER_TIMEOUT_S}s;" in conf
    assert f"client_body_timeout {gateway.CLIENT_BODY_TIMEOUT_S}s;" in conf
