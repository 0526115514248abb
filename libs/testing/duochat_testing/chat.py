"""Run real chat processes and talk STOMP to them: used by the tests and by ``bench/``.

Nothing here is used by the service itself. ``Stub`` stands in for auth (the JWKS) and boards
(``GET /boards/rooms/{id}``) over real HTTP, so chat runs exactly as deployed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis
from sqlalchemy import create_engine, text
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from duochat_chat.stomp.frames import SERVER_COMMANDS, Frame, FrameParser, encode
from duochat_common.events.bus import EventBus
from duochat_common.events.schemas import BOARDS_STREAM, BoardApplied, UserRef
from duochat_common.serving import uvicorn_cli
from duochat_common.testing import TestSigner


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class StubRoom:
    room_id: str
    board_id: int
    writer: UserRef
    applicant: UserRef
    title: str = "a board"
    status: str = "open"

    def json(self) -> dict[str, Any]:
        return {
            "roomId": self.room_id,
            "boardId": self.board_id,
            "boardTitle": self.title,
            "writer": self.writer.model_dump(),
            "applicant": self.applicant.model_dump(),
            "status": self.status,
        }


class Stub:
    """auth's JWKS and boards' room lookup, on a real port, in a thread."""

    def __init__(self, signer: TestSigner) -> None:
        self.signer = signer
        self.rooms: dict[str, StubRoom] = {}
        self.lookups = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path.endswith("/.well-known/jwks.json"):
                    return self._json(200, stub.signer.jwks())
                if self.path.startswith("/boards/rooms/"):
                    stub.lookups += 1
                    return self._room(self.path.removeprefix("/boards/rooms/"))
                return self._json(404, {"code": "not_found", "message": "no such path"})

            def _room(self, room_id: str) -> None:
                auth = self.headers.get("Authorization", "")
                try:
                    user = asyncio.run(stub.signer.verifier().verify(auth.removeprefix("Bearer ")))
                except Exception:
                    return self._json(401, {"code": "unauthorized", "message": "no"})
                room = stub.rooms.get(room_id)
                if room is None:
                    return self._json(404, {"code": "not_found", "message": "no such room"})
                if user.id not in (room.writer.id, room.applicant.id):
                    return self._json(403, {"code": "forbidden", "message": "not yours"})
                return self._json(200, room.json())

            def _json(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class ChatProcess:
    """One uvicorn running the chat app, on its own port."""

    env: dict[str, str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws-stomp"

    def start(self) -> None:
        args = [
            sys.executable,
            "-m",
            "uvicorn",
            "duochat_chat.main:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            "--no-access-log",
            *uvicorn_cli("chat"),  # what the image runs
        ]
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            args, env={**os.environ, **self.env}, stdout=out, stderr=subprocess.STDOUT
        )

    async def wait_ready(self, within: float = 120.0) -> None:
        deadline = time.monotonic() + within
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"chat on :{self.port} exited with {self.proc.returncode}")
                try:
                    if (await client.get(f"{self.http}/readyz", timeout=1)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise TimeoutError(f"chat on :{self.port} not ready")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def chat_env(*, database_url: str, redis_url: str, prefix: str, stub: Stub, **extra: str) -> dict:
    return {
        "DUOCHAT_ENVIRONMENT": "test",
        "DUOCHAT_DATABASE_URL": database_url,
        "DUOCHAT_REDIS_URL": redis_url,
        "DUOCHAT_REDIS_PREFIX": prefix,
        "DUOCHAT_AUTH_JWKS_URL": f"{stub.url}/auth/.well-known/jwks.json",
        "DUOCHAT_BOARDS_URL": stub.url,
        "DUOCHAT_LOG_LEVEL": "WARNING",
        **{f"DUOCHAT_{k.upper()}": v for k, v in extra.items()},
    }


async def publish_rooms(redis: aioredis.Redis, prefix: str, rooms: Iterable[StubRoom]) -> None:
    """Announce rooms the way boards does (``board.applied``)."""
    envelopes = [
        BoardApplied(
            board_id=r.board_id,
            board_title=r.title,
            room_id=r.room_id,
            writer=r.writer,
            applicant=r.applicant,
        ).envelope()
        for r in rooms
    ]
    bus = EventBus(redis)
    for start in range(0, len(envelopes), 500):
        await bus.publish_many(f"{prefix}{BOARDS_STREAM}", envelopes[start : start + 500])


def new_room(writer: UserRef, applicant: UserRef, board_id: int = 1) -> StubRoom:
    return StubRoom(str(uuid.uuid4()), board_id, writer, applicant)


class StompError(Exception):
    def __init__(self, frame: Frame) -> None:
        super().__init__(frame.get("message") or "ERROR")
        self.frame = frame


class StompClient:
    """A small asyncio STOMP client over ``websockets`` (for tests and the bench)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.parser = FrameParser(commands=SERVER_COMMANDS, max_frame_bytes=1 << 22)
        self.messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.frames: list[Frame] = []
        self.errors: list[Frame] = []
        self.receipts: dict[str, asyncio.Future[Frame]] = {}
        self.connected: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self.closed = asyncio.Event()
        self._seq = 0
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def open(
        cls,
        url: str,
        token: str | None,
        *,
        subprotocol: str = "v12.stomp",
        headers: dict[str, str] | None = None,
        within: float = 10.0,
    ) -> StompClient:
        ws = await connect(url, subprotocols=[subprotocol], open_timeout=within)  # type: ignore[list-item]
        client = cls(ws)
        hdrs = {"accept-version": "1.2,1.1,1.0", "host": "duochat", "heart-beat": "0,0"}
        if token is not None:
            hdrs["token"] = token
        hdrs.update(headers or {})
        await client.send_frame("CONNECT", hdrs)
        closed: asyncio.Future[Any] = asyncio.ensure_future(client.closed.wait())
        waiting: list[asyncio.Future[Any]] = [client.connected, closed]
        async with asyncio.timeout(within):
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        closed.cancel()
        if not client.connected.done():
            raise StompError(client.errors[0] if client.errors else Frame("ERROR"))
        return client

    async def _read(self) -> None:
        try:
            async for data in self.ws:
                raw = data.encode() if isinstance(data, str) else data
                for frame in self.parser.feed(raw):
                    self.frames.append(frame)
                    if frame.command == "MESSAGE":
                        body = json.loads(frame.body)
                        body["_subscription"] = frame.get("subscription")
                        self.messages.put_nowait(body)
                    elif frame.command == "RECEIPT":
                        fut = self.receipts.pop(frame.get("receipt-id") or "", None)
                        if fut is not None and not fut.done():
                            fut.set_result(frame)
                    elif frame.command == "CONNECTED":
                        if not self.connected.done():
                            self.connected.set_result(frame)
                    elif frame.command == "ERROR":
                        self.errors.append(frame)
                        fut = self.receipts.pop(frame.get("receipt-id") or "", None)
                        if fut is not None and not fut.done():
                            fut.set_exception(StompError(frame))
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()
            for fut in self.receipts.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("closed before the receipt"))
            self.receipts.clear()

    async def send_frame(self, command: str, headers: dict[str, str], body: bytes = b"") -> None:
        await self.ws.send(encode(Frame(command, list(headers.items()), body)).decode())

    def _receipt(self) -> tuple[str, asyncio.Future[Frame]]:
        self._seq += 1
        rid = f"r{self._seq}"
        fut: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self.receipts[rid] = fut
        return rid, fut

    async def subscribe(
        self, room_id: str, *, sub_id: str | None = None, since: int | None = None
    ) -> None:
        """SUBSCRIBE and wait for its receipt (raises StompError on an ERROR)."""
        rid, fut = self._receipt()
        headers = {"id": sub_id or f"sub-{room_id}", "destination": f"/sub/chat/room/{room_id}"}
        if since is not None:
            headers["since"] = str(since)
        headers["receipt"] = rid
        await self.send_frame("SUBSCRIBE", headers)
        async with asyncio.timeout(10):
            await fut

    async def send(
        self, room_id: str, message: str, *, receipt: bool = True, **extra: Any
    ) -> asyncio.Future[Frame] | None:
        body = json.dumps({"type": "TALK", "roomId": room_id, "message": message, **extra})
        headers = {"destination": "/pub/chat/message", "content-type": "application/json"}
        fut = None
        if receipt:
            rid, fut = self._receipt()
            headers["receipt"] = rid
        await self.send_frame("SEND", headers, body.encode())
        return fut

    async def next_message(self, within: float = 10.0) -> dict[str, Any]:
        async with asyncio.timeout(within):
            return await self.messages.get()

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(Exception):
            await self.ws.close()


async def collect(
    client: StompClient, count: int, *, kind: str | None = "TALK", within: float = 15.0
) -> list[dict[str, Any]]:
    """The next ``count`` stored messages (of ``kind``, if given) a client receives, in order;
    transient ENTER/QUIT frames (no id) are skipped."""
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(within):
        while len(out) < count:
            msg = await client.messages.get()
            if msg.get("id") is None:
                continue
            if kind is None or msg["type"] == kind:
                out.append(msg)
    return out


class Member:
    """One side of a conversation for failure tests: it checks that stored messages arrive
    densely (each id = the last + 1), keeps what it saw, and resumes with ``since``."""

    def __init__(self, urls: list[str], token: str, room_id: str) -> None:
        self.urls = urls
        self.token = token
        self.room_id = room_id
        self.client: StompClient | None = None
        self.seen: list[dict[str, Any]] = []
        self.acked: list[str] = []  # texts whose RECEIPT arrived
        self.reconnects = 0

    def take(self, msg: dict[str, Any]) -> None:
        if msg.get("id") is None:
            return
        last = self.seen[-1]["id"] if self.seen else 0
        if msg["id"] != last + 1:
            raise AssertionError(f"gap or repeat in {self.room_id}: {msg['id']} after {last}")
        self.seen.append({k: v for k, v in msg.items() if k != "_subscription"})

    def drain(self) -> None:
        if self.client is not None:
            while not self.client.messages.empty():
                self.take(self.client.messages.get_nowait())

    async def connect(self, url: str) -> None:
        if self.client is not None:
            await self.client.close()
            self.drain()
        self.client = await StompClient.open(url, self.token)
        await self.client.subscribe(self.room_id, since=self.seen[-1]["id"] if self.seen else 0)

    async def connect_any(self, prefer: int, within: float = 30.0) -> None:
        """Connect to ``urls[prefer]``, falling back to the others, until one answers."""
        deadline = asyncio.get_running_loop().time() + within
        order = self.urls[prefer:] + self.urls[:prefer]
        while True:
            for url in order:
                try:
                    await self.connect(url)
                    return
                except (OSError, StompError, TimeoutError, ConnectionError):
                    continue
                except Exception as exc:  # websockets' handshake errors
                    if asyncio.get_running_loop().time() > deadline:
                        raise exc
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("no chat instance answered")
            await asyncio.sleep(0.2)

    async def talk(self, stop: asyncio.Event, tag: str, prefer: int, pace: float = 0.02) -> None:
        """Send with receipts until ``stop``; on a dropped socket, reconnect and go on. A
        message with no receipt is sent again with the same ``clientMessageId``, as a client
        should, until it is receipted (so it must be stored exactly once)."""
        n = 0
        text: str | None = None
        while not stop.is_set() or text is not None:
            client = self.client
            assert client is not None
            if client.closed.is_set():
                self.reconnects += 1
                await self.connect_any(1 - prefer if len(self.urls) > 1 else 0)
                continue
            if text is None:
                text = f"{tag}-{n}"
                n += 1
            try:
                fut = await client.send(self.room_id, text, clientMessageId=f"k-{text}")
                assert fut is not None
                async with asyncio.timeout(10):
                    await fut
                self.acked.append(text)
                text = None
            except Exception:
                await asyncio.sleep(0.05)
                continue
            finally:
                self.drain()
            await asyncio.sleep(pace)

    async def settle(self, last_id: int, within: float = 20.0) -> None:
        async with asyncio.timeout(within):
            while not self.seen or self.seen[-1]["id"] < last_id:
                client = self.client
                assert client is not None
                if client.closed.is_set() and client.messages.empty():
                    await self.connect_any(0)
                    continue
                try:
                    async with asyncio.timeout(0.5):
                        self.take(await client.messages.get())
                except TimeoutError:
                    continue


async def history(http_url: str, room_id: str, token: str) -> list[dict[str, Any]]:
    """A room's whole stored history, through REST."""
    out: list[dict[str, Any]] = []
    after = 0
    async with httpx.AsyncClient(base_url=http_url, timeout=10) as http:
        while True:
            reply = await http.get(
                f"/chat/rooms/{room_id}/messages",
                params={"after": after, "limit": 200},
                headers={"Authorization": f"Bearer {token}"},
            )
            reply.raise_for_status()
            page = reply.json()
            out.extend(page["items"])
            if not page["hasMore"]:
                return out
            after = out[-1]["id"]


class HoldProxy:
    """A loopback TCP proxy in front of a server (MariaDB, Redis), driven by a test: once
    armed, the first client packet that contains ``marker`` (say ``b"COMMIT"``) passes, and
    from then on the server's answers on that connection are held until ``release()``. So a
    test can stop a process at the moment its COMMIT ran on the server but its answer had not
    arrived. With ``hold_request`` the packet itself waits instead (and what follows it on its
    connection): a command sent but not yet arrived, while other connections go on."""

    def __init__(self, target_port: int = 3306, *, hold_request: bool = False) -> None:
        self.target_port = target_port
        self.hold_request = hold_request
        self.port = 0
        self.marker: bytes | None = None
        self.holding = asyncio.Event()  # set when an answer is being held
        self._released = asyncio.Event()
        self._released.set()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def arm(self, marker: bytes) -> None:
        self.marker = marker
        self.holding.clear()
        self._released.clear()

    def release(self) -> None:
        self.marker = None
        self._released.set()

    async def close(self) -> None:
        self.release()
        if self._server is not None:
            self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        held = asyncio.Event()

        async def upstream() -> None:
            while data := await reader.read(65536):
                if self.marker is not None and self.marker in data and not self.holding.is_set():
                    held.set()
                    self.holding.set()
                    if self.hold_request:
                        await self._released.wait()
                up_w.write(data)
                await up_w.drain()

        async def downstream() -> None:
            while data := await up_r.read(65536):
                if held.is_set() and not self.hold_request:
                    await self._released.wait()
                    held.clear()
                writer.write(data)
                await writer.drain()

        tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for w in (writer, up_w):
                with contextlib.suppress(Exception):
                    w.close()


def db_rows(database_url: str, room_ids: list[str]) -> dict[str, list[tuple[int, str, str]]]:
    engine = create_engine(database_url.replace("mysql://", "mysql+pymysql://"))
    try:
        with engine.connect() as conn:
            out: dict[str, list[tuple[int, str, str]]] = {}
            for room_id in room_ids:
                rows = conn.execute(
                    text(
                        "SELECT id, type, message FROM chat_messages WHERE room_id = :r ORDER BY id"
                    ),
                    {"r": room_id},
                ).all()
                out[room_id] = [(r.id, r.type, r.message) for r in rows]
            return out
    finally:
        engine.dispose()


async def converse(
    chat: Any, pairs: int, *, owner: str | None = None, among: tuple[str, ...] = ()
) -> tuple[list[str], list[Member]]:
    """Rooms of two members, each member on a different instance than its peer; with
    ``owner``, only rooms that ``owner`` owns among the instances ``among``."""
    urls = [p.ws for p in chat.procs]
    rooms, members = [], []
    for _ in range(pairs):
        alice, ta = chat.user()
        bob, tb = chat.user()
        room = await chat.room(alice, bob, owner=owner, among=among)
        rooms.append(room)
        a, b = Member(urls, ta, room), Member(urls, tb, room)
        await a.connect(urls[0])
        await b.connect(urls[1])  # every member on a different instance than its peer
        members += [a, b]
    return rooms, members


async def finish(chat: Any, rooms: list[str], members: list[Member]) -> None:
    """Both members saw the database's history, every receipted text is stored, and no text
    is stored twice."""
    for i, room in enumerate(rooms):
        a, b = members[2 * i], members[2 * i + 1]
        stored = await history(chat.procs[0].http, room, a.token)
        await asyncio.gather(a.settle(stored[-1]["id"]), b.settle(stored[-1]["id"]))
        assert a.seen == stored, "member A's history differs from the database"
        assert b.seen == stored, "member B's history differs from the database"
        texts = {m["message"] for m in stored}
        for member in (a, b):
            lost = [t for t in member.acked if t not in texts]
            assert not lost, f"acknowledged but not stored: {lost[:5]}"
        in_db = db_rows(chat.database_url, [room])[room]
        assert [(m["id"], m["type"], m["message"]) for m in stored] == in_db
        talk = [m["message"] for m in stored if m["type"] == "TALK"]
        assert len(talk) == len(set(talk)), "a message was stored twice"
    for member in members:
        if member.client is not None:
            await member.client.close()


@contextlib.asynccontextmanager
async def talking(members: list[Member], tag: str) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """Every member sends in a loop (preferring its own instance when it reconnects) until the
    yielded ``stop()`` is awaited, which waits for each loop's last message; the loops end
    however the block ends."""
    done = asyncio.Event()
    talkers = [
        asyncio.create_task(m.talk(done, f"{tag}{i}", prefer=i % 2)) for i, m in enumerate(members)
    ]

    async def stop() -> None:
        done.set()
        await asyncio.gather(*talkers)

    try:
        yield stop
    finally:
        done.set()
        for task in talkers:
            task.cancel()
