"""The uvicorn options are the same as keyword arguments and as flags, and uvicorn takes both."""

from __future__ import annotations

import uvicorn
from uvicorn.main import main as uvicorn_main

from duochat_common.serving import ALB_IDLE_TIMEOUT_S, KEEP_ALIVE_S, uvicorn_cli, uvicorn_options


def test_only_chat_and_the_embedded_server_get_websocket_options() -> None:
    plain = {"timeout_keep_alive": KEEP_ALIVE_S}
    assert (
        uvicorn_options("auth") == uvicorn_options("boards") == uvicorn_options("notify") == plain
    )
    assert uvicorn_options("chat") == uvicorn_options("embedded")
    assert uvicorn_options("chat")["ws"] == "websockets-sansio"
    assert uvicorn_options("chat")["ws_per_message_deflate"] is False


def test_the_flags_parse_to_the_same_config() -> None:
    context = uvicorn_main.make_context("uvicorn", ["app:app", *uvicorn_cli("chat")])
    for name, value in uvicorn_options("chat").items():
        assert context.params[name] == value, name
    config = uvicorn.Config("app:app", **uvicorn_options("chat"))  # type: ignore[arg-type]
    assert config.ws == "websockets-sansio"
    assert config.ws_per_message_deflate is False


def test_every_server_outlives_the_load_balancers_idle_timeout() -> None:
    """The ALB must close an idle connection before the server does, or it sends a request
    into a closing socket and answers 502 (the CDK test reads the synthesized ALB too)."""
    for service in ("auth", "boards", "chat", "notify", "embedded"):
        keep_alive = uvicorn_options(service)["timeout_keep_alive"]
        assert isinstance(keep_alive, int) and keep_alive > ALB_IDLE_TIMEOUT_S
        context = uvicorn_main.make_context("uvicorn", ["app:app", *uvicorn_cli(service)])
        assert context.params["timeout_keep_alive"] == keep_alive
