"""A loopback TCP proxy that a test drives, to put faults between a process and Redis.

- ``cut()`` closes every connection and refuses new ones (an outage) until ``restore()``;
- ``hold_on(pattern, after_forwarding=...)`` stops a connection at the first client chunk that
  contains ``pattern``: before forwarding it, or after forwarding it and before any reply goes
  back; ``held`` is set then, so the test can kill the process at exactly that moment.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class Proxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.held = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()
        self._down = False
        self._pattern: bytes | None = None
        self._after = False
        # Stopped connections wait on this; a cut releases them so that their tasks end.
        self._release = asyncio.Event()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()

    def cut(self) -> None:
        self._down = True
        for writer in list(self._conns):
            writer.transport.abort()
        self._conns.clear()
        self._release.set()

    def restore(self) -> None:
        self._down = False
        self._release = asyncio.Event()

    def hold_on(self, pattern: bytes, *, after_forwarding: bool) -> None:
        self.held.clear()
        self._pattern = pattern
        self._after = after_forwarding

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._down:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._conns |= {writer, up_writer}
        frozen = asyncio.Event()  # this connection's traffic stops both ways
        release = self._release

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, up: bool) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    if frozen.is_set():
                        await release.wait()
                        break
                    if up and self._pattern is not None and self._pattern in data:
                        self._pattern = None
                        if self._after:
                            dst.write(data)
                        frozen.set()
                        self.held.set()
                        await release.wait()
                        break
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))
        self._conns.discard(writer)
        self._conns.discard(up_writer)


@contextlib.asynccontextmanager
async def proxy_to(host: str, port: int) -> AsyncIterator[Proxy]:
    proxy = Proxy(host, port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()
