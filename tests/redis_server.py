"""A throwaway Redis server for tests and benchmarks: ``redis-server`` on 127.0.0.1, its own
port and folder, no persistence; stopped (SIGKILL to its process group) and removed afterwards.

Uses ``redis-server`` on PATH (Debian: ``apt-get install redis-server``; the package's
own service is not needed).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


class Unavailable(Exception):
    """No Redis server can be started here; the message says why."""


@dataclass
class RedisServer:
    """A running server; ``url`` is its database 0 as Celery and redis-py take it."""

    root: Path
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        """Kill the server (nothing to keep) and remove its folder; safe to call twice."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "RedisServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start(timeout: float = 30) -> RedisServer:
    """Start a fresh server, or raise :class:`Unavailable` with the reason."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise Unavailable("no redis-server on PATH; `apt-get install redis-server` provides it")
    root = Path(tempfile.mkdtemp(prefix="origine-redis-"))
    port = _free_port()
    log = open(root / "server.log", "wb")
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(root),
         "--save", "", "--appendonly", "no", "--protected-mode", "yes", "--daemonize", "no"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    log.close()
    server = RedisServer(root=root, port=port, process=process)
    deadline = time.monotonic() + timeout
    while not _answers(port):
        if process.poll() is not None or time.monotonic() > deadline:
            detail = (root / "server.log").read_text(errors="replace").strip().splitlines()[-2:]
            server.stop()
            raise Unavailable(f"redis-server did not start on port {port}: {' / '.join(detail)}")
        time.sleep(0.05)
    return server
