"""The uvicorn options a service runs with, in one place: the image's entrypoint, the
local-services mode, the embedded server and the chat test and benchmark harness all take them
from here, so what the benchmark measures is what ships.

Only chat serves WebSockets (STOMP at ``/ws-stomp``):

- ``websockets-sansio``: uvicorn's implementation with the least memory per connection;
- a 64 KiB message limit (STOMP frames are capped at 16 KiB by chat itself);
- no per-message deflate: chat's frames are small JSON, and a browser that negotiates it would
  make every connection keep a compressor and a decompressor (zlib state of tens of KiB each);
- a deep accept backlog, for the burst of reconnects when another instance goes away.

Every service keeps idle keep-alive connections open longer than the load balancer in front of
it. An ALB (or nginx) reuses a backend connection until *its* idle timeout; uvicorn's default of
5 s closes it first, and a request the proxy sends on it in that instant gets a 502. The ALB's idle
timeout is ``ALB_IDLE_TIMEOUT_S`` (the CDK stack sets it from here), and the server's keep-alive
is a margin above it.

The event loop and HTTP parser are uvicorn's defaults (``auto``), which pick uvloop and
httptools: ``uvicorn[standard]`` installs both.
"""

from __future__ import annotations

CHAT_WEBSOCKETS: dict[str, str | int | bool] = {
    "ws": "websockets-sansio",
    "ws_max_size": 65_536,
    "ws_per_message_deflate": False,
}
CHAT_BACKLOG = 4096
# WebSocket and SSE connections stay open between heart-beats (the SSE keep-alive is 15 s).
ALB_IDLE_TIMEOUT_S = 600
# Above the ALB's idle timeout, so that the ALB, not the server, closes an idle connection.
KEEP_ALIVE_S = ALB_IDLE_TIMEOUT_S + 20


def uvicorn_options(service: str) -> dict[str, str | int | bool]:
    """Keyword arguments for ``uvicorn.run``/``uvicorn.Config`` (beyond host, port, logging)."""
    options: dict[str, str | int | bool] = {"timeout_keep_alive": KEEP_ALIVE_S}
    if service in ("chat", "embedded"):  # the embedded server serves chat too
        options.update(CHAT_WEBSOCKETS, backlog=CHAT_BACKLOG)
    return options


def uvicorn_cli(service: str) -> list[str]:
    """The same options as ``uvicorn`` command-line flags."""
    args: list[str] = []
    for name, value in uvicorn_options(service).items():
        flag = "--" + name.replace("_", "-")
        args += [flag, str(value).lower() if isinstance(value, bool) else str(value)]
    return args
