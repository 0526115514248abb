"""The uvicorn options are the same as keyword arguments and as flags, and uvicorn takes both."""

from __future__ import annotations

import uvicorn
from uvicorn.main import main as uvicorn_main

from duochat_common.serving import uvicorn_cli, uvicorn_options


def test_only_chat_and_the_embedded_server_get_websocket_options() -> None:
    assert uvicorn_options("auth") == uvicorn_options("boards") == uvicorn_options("notify") == {}
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
