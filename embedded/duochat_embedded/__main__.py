"""``python -m duochat_embedded``: the whole product on one port, no servers needed."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
from pathlib import Path

import uvicorn

from duochat_common.logs import configure_logging
from duochat_common.routing import EMBEDDED_PORT
from duochat_common.serving import uvicorn_options
from duochat_embedded.runner import EmbeddedInProduction, build, refuse_production
from duochat_embedded.slowclients import BODY_TIMEOUT_S, HEADER_TIMEOUT_S, timed_protocol

log = logging.getLogger("duochat_embedded")

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default=os.environ.get("DUOCHAT_HOST", "127.0.0.1"))
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("DUOCHAT_PORT", EMBEDDED_PORT))
    )
    parser.add_argument(
        "--data-dir", type=Path, default=Path(os.environ.get("DUOCHAT_DATA_DIR", ROOT / "data"))
    )
    parser.add_argument("--web-dist", type=Path, default=ROOT / "web" / "dist")
    parser.add_argument("--log-json", action="store_true", help="JSON logs instead of plain text")
    parser.add_argument(
        "--header-timeout",
        type=float,
        default=float(os.environ.get("DUOCHAT_HEADER_TIMEOUT_SECONDS", HEADER_TIMEOUT_S)),
        help="seconds a request's headers may take to arrive",
    )
    parser.add_argument(
        "--body-timeout",
        type=float,
        default=float(os.environ.get("DUOCHAT_BODY_TIMEOUT_SECONDS", BODY_TIMEOUT_S)),
        help="seconds a request's body may take to arrive",
    )
    args = parser.parse_args()

    configure_logging("embedded", json_output=args.log_json)
    try:
        refuse_production(os.environ)
    except EmbeddedInProduction as exc:
        raise SystemExit(f"duochat embedded: {exc}") from None
    if not is_loopback(args.host):
        log.warning(
            "listening on %s, beyond this machine: anyone who reaches it can sign in as the "
            "demo accounts (password 1234), over plain http",
            args.host,
        )
    base_url = f"http://127.0.0.1:{args.port}"
    app = build(data_dir=args.data_dir, web_dist=args.web_dist, base_url=base_url)
    print(
        f"duochat embedded: http://{args.host}:{args.port}  (data in {args.data_dir})\n"
        "demo accounts: happydaddy / 1234 and angrydaddy / 1234. Ctrl-C stops.",
        flush=True,
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_config=None,
        timeout_graceful_shutdown=5,
        ws_ping_interval=None,
        http=timed_protocol(header_timeout=args.header_timeout, body_timeout=args.body_timeout),
        **uvicorn_options("embedded"),  # type: ignore[arg-type]
    )


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a --host value) is reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


if __name__ == "__main__":
    main()
