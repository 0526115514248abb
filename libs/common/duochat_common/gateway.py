"""Render the nginx gateway that stands in for the ALB, from the route table.

The compose gateway (``deploy/gateway/nginx.conf``) and the local-services gateway
(``make services``) are both rendered here, so they cannot drift from ``ROUTES`` or from
the ALB listener rules that the CDK stack builds from the same table.

Run ``python -m duochat_common.gateway --mode compose|local --out FILE``.
"""

from __future__ import annotations

import argparse
import getpass
from collections.abc import Mapping, Sequence
from pathlib import Path

from duochat_common.routing import (
    GATEWAY_PORT,
    INTERNAL_PATHS,
    ROUTES,
    WEB_PORT,
    WEB_SERVICE,
    Route,
)
from duochat_common.secheaders import SECURITY_HEADERS

# WebSocket and SSE connections stay open for as long as the user stays on the page; the
# heart-beats (STOMP) and keep-alive comments (SSE, every 15 s) keep them from looking idle.
LONG_LIVED_TIMEOUT_S = 3600
REQUEST_TIMEOUT_S = 60
# A client must send a request's headers, and then its body, within these (nginx closes the
# connection with 408 otherwise); slow readers of a response are cut after SEND_TIMEOUT_S.
CLIENT_HEADER_TIMEOUT_S = 10
CLIENT_BODY_TIMEOUT_S = 30
SEND_TIMEOUT_S = 60

COMPOSE_CONF = Path("deploy/gateway/nginx.conf")

# nginx needs a Content-Type per extension; embedding the few a Vite build emits keeps the
# config self-contained (no include of a distribution's mime.types).
_MIME_TYPES = {
    "text/html": "html htm",
    "text/css": "css",
    "text/plain": "txt",
    "application/javascript": "js mjs",
    "application/json": "json map",
    "application/manifest+json": "webmanifest",
    "image/svg+xml": "svg",
    "image/png": "png",
    "image/jpeg": "jpg jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
    "image/x-icon": "ico",
    "font/woff": "woff",
    "font/woff2": "woff2",
}


def alb_pattern_to_regex(pattern: str) -> str:
    """The anchored regex for an ALB path pattern (``*`` any run, ``?`` one character).

    Regex metacharacters become one-character classes (``.`` -> ``[.]``), so the result has
    no backslash and reads the same to nginx (PCRE) and to Python's ``re``.
    """
    if not pattern.startswith("/"):
        raise ValueError(f"path pattern must start with '/': {pattern!r}")
    parts = []
    for char in pattern:
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        elif char in '\\^[]"':
            raise ValueError(f"unsupported character {char!r} in path pattern {pattern!r}")
        elif char in ".+()|{}$":
            parts.append(f"[{char}]")
        else:
            parts.append(char)
    return "^" + "".join(parts) + "$"


def _upstream_name(service: str) -> str:
    return f"duochat_{service}"


def _quote(value: str) -> str:
    """An nginx string literal: regexes may carry characters ({ ; space) that need quotes."""
    if '"' in value or "\\" in value:
        raise ValueError(f"cannot quote {value!r}")
    return f'"{value}"'


def _security_headers(indent: str) -> list[str]:
    """The browser security headers; nginx drops the server's ``add_header`` lines in a location
    that has one of its own, so such a location repeats these."""
    return [
        f"{indent}add_header {name} {_quote(value)} always;"
        for name, value in SECURITY_HEADERS.items()
    ]


def _proxy_block(
    service: str, *, websocket: bool = False, stream: bool = False, indent: str = "      "
) -> list[str]:
    """The directives of a location that proxies to ``service``."""
    connection = "$duochat_connection_upgrade" if websocket else '""'
    lines = [
        f"proxy_pass http://{_upstream_name(service)};",
        "proxy_http_version 1.1;",
        "proxy_set_header Host $host;",
        "proxy_set_header X-Request-ID $duochat_request_id;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header X-Forwarded-Host $host;",
        f"proxy_set_header Connection {connection};",
    ]
    if websocket:
        lines.append("proxy_set_header Upgrade $http_upgrade;")
    # The gateway sends the security headers once; an upstream's own copy would double them.
    lines += [f"proxy_hide_header {name};" for name in SECURITY_HEADERS]
    if websocket or stream:
        lines += [
            f"proxy_read_timeout {LONG_LIVED_TIMEOUT_S}s;",
            f"proxy_send_timeout {LONG_LIVED_TIMEOUT_S}s;",
        ]
    else:
        lines += [
            f"proxy_read_timeout {REQUEST_TIMEOUT_S}s;",
            f"proxy_send_timeout {REQUEST_TIMEOUT_S}s;",
        ]
    if stream:
        # Each SSE event must reach the browser when it is written, not when a buffer fills;
        # the header tells any nginx in front of this one the same.
        lines += [
            "proxy_buffering off;",
            "proxy_cache off;",
            "gzip off;",
            "add_header X-Accel-Buffering no always;",
        ]
    # The service echoes X-Request-ID itself (RequestIdMiddleware); adding it here would double it.
    return [indent + line for line in lines] + (_security_headers(indent) if stream else [])


def _route_locations(route: Route) -> list[str]:
    """One regex location per path pattern of ``route``, its SSE paths first."""
    out: list[str] = []
    for path in route.sse_paths:
        if not route.matches(path):
            raise ValueError(f"{route.service}: SSE path {path} is outside its own patterns")
        out.append(f"    # {route.service} (priority {route.priority}): SSE stream {path}")
        out.append(f"    location ~ {_quote(alb_pattern_to_regex(path))} {{")
        out += _proxy_block(route.service, stream=True)
        out.append("    }")
    for pattern in route.paths:
        out.append(f"    # {route.service} (priority {route.priority}): ALB pattern {pattern}")
        out.append(f"    location ~ {_quote(alb_pattern_to_regex(pattern))} {{")
        out += _proxy_block(route.service, websocket=route.websocket)
        out.append("    }")
    return out


def _default_location(web_upstream: Sequence[str] | None, static_root: str | None) -> list[str]:
    if web_upstream:
        return [
            "    # Default rule (/*): the web app.",
            "    location / {",
            *_proxy_block(WEB_SERVICE),
            "    }",
        ]
    if static_root is None:
        raise ValueError("either web_upstream or static_root is needed for the default rule")
    return [
        "    # Default rule (/*): the built web app, with the SPA fallback to index.html.",
        "    location / {",
        f"      root {_quote(static_root)};",
        "      try_files $uri /index.html;",
        "      add_header X-Request-ID $duochat_request_id always;",
        *_security_headers("      "),
        "    }",
        "    # Vite fingerprints these file names, so they never change under the same URL.",
        '    location ~ "^/assets/" {',
        f"      root {_quote(static_root)};",
        "      expires 1y;",
        '      add_header Cache-Control "public, immutable" always;',
        *_security_headers("      "),
        "    }",
    ]


def render_nginx_conf(
    *,
    upstreams: Mapping[str, Sequence[str]],
    listen: int,
    web_upstream: Sequence[str] | None = None,
    static_root: str | None = None,
    pid_path: str | None = None,
    temp_dir: str | None = None,
    error_log: str | None = None,
    access_log: str | None = None,
    user: str | None = None,
) -> str:
    """A complete nginx.conf that routes like the ALB: path rules from ``ROUTES``.

    ``upstreams`` maps each service of the route table to its ``host:port`` addresses.
    The default rule goes to ``web_upstream`` when given, else serves ``static_root``.
    ``pid_path``, ``temp_dir`` and the logs let a plain ``nginx -c FILE -p PREFIX`` run it
    outside a container; left out, nginx's compiled-in defaults apply (logs: stderr/stdout).
    ``user`` is who the workers run as when nginx starts as root (default ``nobody``, who
    may not be able to read ``static_root`` in a home folder).
    """
    routes = sorted(ROUTES, key=lambda r: r.priority)
    _check_upstreams(upstreams, routes)
    lines = [
        "# Generated by `python -m duochat_common.gateway` from duochat_common.routing.ROUTES.",
        "# Do not edit by hand: change the route table and render again.",
        *([f"user {user};"] if user else []),
        "worker_processes auto;",
        f"error_log {error_log or 'stderr'} warn;",
    ]
    if pid_path:
        lines.append(f"pid {pid_path};")
    lines += ["", "events {", "  worker_connections 4096;", "}", ""]
    lines += _http_settings(temp_dir=temp_dir, access_log=access_log)
    all_upstreams = {r.service: upstreams[r.service] for r in routes}
    if web_upstream:
        all_upstreams[WEB_SERVICE] = web_upstream
    lines += _upstream_blocks(all_upstreams)
    lines += [
        "",
        "  server {",
        f"    listen {listen};",
        *_security_headers("    "),
        "    # Served on each service's own port only (Prometheus scrapes it there).",
        *(f"    location = {path} {{ return 404; }}" for path in INTERNAL_PATHS),
        "    # Regex locations are tried in the order written, which is the ALB rule priority",
        "    # order; prefix locations would pick the longest match instead.",
    ]
    for route in routes:
        lines += _route_locations(route)
    lines += _default_location(web_upstream, static_root)
    lines += ["  }", "}", ""]
    return "\n".join(lines)


def _check_upstreams(upstreams: Mapping[str, Sequence[str]], routes: Sequence[Route]) -> None:
    """Every service of the route table has addresses, and nothing else does."""
    missing = {r.service for r in routes} - set(upstreams)
    if missing:
        raise ValueError(f"no upstream address for: {', '.join(sorted(missing))}")
    unknown = set(upstreams) - {r.service for r in routes}
    if unknown:
        raise ValueError(f"not in the route table: {', '.join(sorted(unknown))}")


def _upstream_blocks(upstreams: Mapping[str, Sequence[str]]) -> list[str]:
    lines = []
    for service, addresses in upstreams.items():
        if not addresses:
            raise ValueError(f"{service}: empty upstream address list")
        lines.append(f"  upstream {_upstream_name(service)} {{")
        lines += [f"    server {address};" for address in addresses]
        lines += ["    keepalive 32;", "  }"]
    return lines


def _http_settings(*, temp_dir: str | None, access_log: str | None) -> list[str]:
    """The opening of the ``http`` block: types, temp folders, request ids, logs, timeouts."""
    lines = ["http {", "  types {"]
    lines += [f"    {mime} {exts};" for mime, exts in _MIME_TYPES.items()]
    lines += ["  }", "  default_type application/octet-stream;", ""]
    if temp_dir:
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            lines.append(f"  {kind}_temp_path {temp_dir}/{kind};")
        lines.append("")
    lines += [
        "  # Keep the caller's X-Request-ID, or make one, and pass it to the service.",
        "  map $http_x_request_id $duochat_request_id {",
        "    default $http_x_request_id;",
        '    "" $request_id;',
        "  }",
        "  # Upgrade only when the client asked to; otherwise keep upstream connections alive.",
        "  map $http_upgrade $duochat_connection_upgrade {",
        "    default upgrade;",
        '    "" "";',
        "  }",
        "  log_format duochat '$remote_addr [$time_local] \"$request\" $status $body_bytes_sent '",
        "                     '$request_time rid=$duochat_request_id up=$upstream_addr';",
        f"  access_log {access_log or '/dev/stdout'} duochat;",
        "  sendfile on;",
        "  tcp_nodelay on;",
        "  keepalive_timeout 75s;",
        "  client_max_body_size 1m;",
        f"  client_header_timeout {CLIENT_HEADER_TIMEOUT_S}s;",
        f"  client_body_timeout {CLIENT_BODY_TIMEOUT_S}s;",
        f"  send_timeout {SEND_TIMEOUT_S}s;",
        "  server_tokens off;",
        "",
    ]
    return lines


def compose_conf() -> str:
    """The gateway of ``docker-compose.yml``: upstreams are the compose service names."""
    return render_nginx_conf(
        upstreams={r.service: [f"{r.service}:{r.port}"] for r in ROUTES},
        listen=GATEWAY_PORT,
        web_upstream=[f"{WEB_SERVICE}:{WEB_PORT}"],
        # nginx-unprivileged runs as a non-root user that may write only under /tmp.
        pid_path="/tmp/nginx.pid",  # noqa: S108 - inside the gateway container
        temp_dir="/tmp",  # noqa: S108 - inside the gateway container
    )


def local_conf(*, static_root: str, run_dir: str) -> str:
    """The gateway of ``make services``: every service on 127.0.0.1 at its route-table port.

    Its workers run as whoever renders it, so that they can read the checkout's web/dist
    (nginx ignores the directive, with a warning, when not started as root).
    """
    return render_nginx_conf(
        user=getpass.getuser(),
        upstreams={r.service: [f"127.0.0.1:{r.port}"] for r in ROUTES},
        listen=GATEWAY_PORT,
        static_root=static_root,
        pid_path=f"{run_dir}/nginx.pid",
        temp_dir=f"{run_dir}/temp",
        error_log=f"{run_dir}/error.log",
        access_log=f"{run_dir}/access.log",
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("compose", "local"), required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--static-root", default="web/dist", help="local mode: the built SPA")
    parser.add_argument("--run-dir", default=".run/gateway", help="local mode: pid, temp, logs")
    args = parser.parse_args(argv)
    if args.mode == "compose":
        text = compose_conf()
    else:
        run_dir = Path(args.run_dir).resolve()
        (run_dir / "temp").mkdir(parents=True, exist_ok=True)
        text = local_conf(static_root=str(Path(args.static_root).resolve()), run_dir=str(run_dir))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
