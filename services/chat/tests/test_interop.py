"""Standard clients work unchanged: @stomp/stompjs (Node + ws) and stomp.py's WebSocket
transport each connect, subscribe, send with a receipt, receive, and get an ERROR for a room
that is not theirs."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import stomp

from duochat_testing.chat import collect

NODE_DIR = Path(__file__).parent / "node"


@pytest.fixture(scope="module")
def node_modules() -> Path:
    """The Node client's packages (installed from the lockfile on first use)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "Node.js and npm are needed for the @stomp/stompjs interop test"
    if not (NODE_DIR / "node_modules" / "@stomp" / "stompjs").exists():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=300
        )
    return NODE_DIR / "node_modules"


async def test_stompjs(chat, node_modules: Path) -> None:
    alice, ta = chat.user("js_alice")
    bob, tb = chat.user("js_bob")
    other, _ = chat.user()
    room = await chat.room(alice, bob)
    foreign = await chat.room(bob, other)
    peer = await chat.client(1, tb)
    await peer.subscribe(room, since=0)

    proc = await asyncio.create_subprocess_exec(
        shutil.which("node") or "node",
        str(NODE_DIR / "interop.mjs"),
        chat.procs[0].ws,
        ta,
        room,
        foreign,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, (out, err)
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert result["protocol"] == "v12.stomp"
    assert result["connected"] == {"version": "1.2", "user": "js_alice"}
    assert result["receipt"] == "stompjs-1"
    talks = [m for m in result["messages"] if m["type"] == "TALK"]
    assert [(m["sender"], m["message"]) for m in talks] == [("js_alice", "from stompjs")]
    assert result["error"]["phase"] == "foreign"
    assert "not a member" in result["error"]["message"]
    (seen,) = await collect(peer, 1)
    assert seen["message"] == "from stompjs" and seen["id"] == talks[0]["id"]


async def test_stompjs_sees_the_conversation_signals(chat, node_modules: Path) -> None:
    """The STOMP additions of issue 15 with @stomp/stompjs: clientMessageId echoed and a resend
    stored once, TYPING, READ and DELETED, each a signal without an id; both members on
    different instances."""
    alice, ta = chat.user("sig_alice")
    bob, tb = chat.user("sig_bob")
    room = await chat.room(alice, bob)
    proc = await asyncio.create_subprocess_exec(
        shutil.which("node") or "node",
        str(NODE_DIR / "signals.mjs"),
        chat.procs[0].ws,
        chat.procs[1].http,
        ta,
        tb,
        room,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, (out, err)
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert result["receipts"] == ["send-1", "send-2"]
    assert (result["readStatus"], result["unsendStatus"]) == (204, 204)

    def of(who: str, kind: str) -> list[dict[str, Any]]:
        return [m for m in result[who] if m["type"] == kind]

    # Stored once, echoed with the client's key, to both members.
    (mine,) = of("alice", "TALK")
    (theirs,) = of("bob", "TALK")
    assert mine == theirs
    assert mine["clientMessageId"] == "stompjs-key-1" and isinstance(mine["id"], int)
    # The signals carry no id: they are not messages.
    assert of("bob", "TYPING") == [{"type": "TYPING", "roomId": room, "sender": "sig_alice"}]
    assert of("alice", "READ") == [
        {"type": "READ", "roomId": room, "sender": "sig_bob", "lastReadId": mine["id"]}
    ]
    assert of("bob", "DELETED") == [{"type": "DELETED", "roomId": room, "id": mine["id"]}]
    # Every subscriber gets a signal, its cause too: a client tells by `sender` whose it is.
    assert of("alice", "TYPING") == of("bob", "TYPING")
    async with httpx.AsyncClient(base_url=chat.procs[0].http) as http:
        page = (
            await http.get(
                f"/chat/rooms/{room}/messages", headers={"Authorization": f"Bearer {ta}"}
            )
        ).json()
    (stored,) = [m for m in page["items"] if m["type"] == "TALK"]
    assert stored["deleted"] is True and stored["message"] == ""
    assert page["otherLastReadId"] == mine["id"]


class Listener(stomp.ConnectionListener):
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.receipts: list[str] = []
        self.errors: list[str] = []
        self.event = threading.Event()

    def on_message(self, frame: Any) -> None:
        self.messages.append(json.loads(frame.body))
        self.event.set()

    def on_receipt(self, frame: Any) -> None:
        self.receipts.append(frame.headers.get("receipt-id"))
        self.event.set()

    def on_error(self, frame: Any) -> None:
        self.errors.append(frame.headers.get("message"))
        self.event.set()


def wait_for(check: Any, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def run_stomp_py(port: int, token: str, room: str, foreign: str) -> Listener:
    listener = Listener()
    conn = stomp.WSStompConnection([("127.0.0.1", port)], ws_path="/ws-stomp")
    conn.set_listener("l", listener)
    conn.connect(headers={"token": token}, wait=True)
    try:
        conn.subscribe(f"/sub/chat/room/{room}", id="1", headers={"since": "0"}, receipt="sub-1")
        wait_for(lambda: "sub-1" in listener.receipts)
        body = json.dumps({"type": "TALK", "roomId": room, "message": "from stomp.py"})
        conn.send("/pub/chat/message", body, content_type="application/json", receipt="send-1")
        wait_for(lambda: "send-1" in listener.receipts)
        wait_for(lambda: any(m["message"] == "from stomp.py" for m in listener.messages))
        conn.subscribe(f"/sub/chat/room/{foreign}", id="2")
        wait_for(lambda: bool(listener.errors))
    finally:
        if conn.is_connected():
            conn.disconnect()
    return listener


async def test_stomp_py(chat) -> None:
    alice, ta = chat.user("py_alice")
    bob, tb = chat.user("py_bob")
    other, _ = chat.user()
    room = await chat.room(alice, bob)
    foreign = await chat.room(bob, other)
    peer = await chat.client(0, tb)
    await peer.subscribe(room, since=0)
    listener = await asyncio.to_thread(run_stomp_py, chat.procs[1].port, ta, room, foreign)
    talks = [m for m in listener.messages if m["type"] == "TALK"]
    assert [(m["sender"], m["message"]) for m in talks] == [("py_alice", "from stomp.py")]
    assert any("not a member" in (e or "") for e in listener.errors)
    (seen,) = await collect(peer, 1)
    assert seen["id"] == talks[0]["id"]
