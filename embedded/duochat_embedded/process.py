"""``python -m duochat_embedded`` as a child process, as a newcomer runs it: for the tests and
the benchmarks that need the whole product on a free port with a throwaway data folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from duochat_embedded.localstack import free_port, wait_ready


class EmbeddedProcess:
    def __init__(
        self,
        *,
        data_dir: Path,
        log: Path,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """``env``: variables set for the server on top of this process's own."""
        self.data_dir = data_dir
        self.log = log
        self.env = {**os.environ, **(env or {})}
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 90) -> None:
        """Start it and wait until ``/readyz`` answers; the error carries the log's tail."""
        self.proc = subprocess.Popen(  # noqa: S603
            [
                sys.executable,
                "-m",
                "duochat_embedded",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
            ],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        try:
            wait_ready(f"{self.url}/readyz", self.proc, timeout=timeout)
        except (RuntimeError, TimeoutError) as exc:
            self.close()
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the embedded server did not start: {exc}\n{tail}") from exc

    def stop(self) -> int:
        """Ctrl-C, as a user stops it; returns the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(20)

    def close(self) -> None:
        """Make sure it is gone (terminate, then kill)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
