"""A throwaway PostgreSQL server for tests: ``initdb`` + ``pg_ctl`` into a temporary folder.

Uses the server binaries on PATH or Debian's ``/usr/lib/postgresql/<version>/bin``.
PostgreSQL refuses to run as root, so as root the server runs as the ``postgres``
user (Debian's package creates it), else ``nobody``, through ``runuser``.
Trust authentication on 127.0.0.1 only, on a free port; stopped and removed afterwards.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


class Unavailable(Exception):
    """No PostgreSQL server can be started here; the message says why."""


@dataclass
class PostgresServer:
    """A running server: ``dsn`` (libpq) and ``url`` (SQLAlchemy, as Dagster takes it) for its ``postgres`` database."""

    root: Path
    bindir: Path
    port: int
    user: str | None

    @property
    def dsn(self) -> str:
        return f"postgresql://origine@127.0.0.1:{self.port}/postgres"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://origine@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        _run(self._cmd("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop"),
             check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def _cmd(self, tool: str, *args: str) -> list[str]:
        command = [str(self.bindir / tool), *args]
        return ["runuser", "-u", self.user, "--", *command] if self.user else command


def find_bindir() -> Path | None:
    """Folder holding ``initdb`` and ``pg_ctl`` (PATH first, then the newest Debian version)."""
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(os.path.realpath(initdb)).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(found[-1]).parent if found else None


def _server_user() -> str | None:
    if os.geteuid() != 0:
        return None
    if not shutil.which("runuser"):
        raise Unavailable("running as root and runuser(1) is missing to start PostgreSQL as another user")
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise Unavailable("running as root and neither a 'postgres' nor a 'nobody' user exists")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(command: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        tool = next(Path(c).name for c in command if os.sep in c)
        raise Unavailable(f"{tool} failed: {' / '.join(tail)}")
    return proc


def start() -> PostgresServer:
    """Start a fresh server, or raise :class:`Unavailable` with the reason."""
    bindir = find_bindir()
    if bindir is None:
        raise Unavailable("no PostgreSQL server binaries (initdb, pg_ctl) on PATH or under "
                          "/usr/lib/postgresql/*/bin; `apt-get install postgresql` provides them")
    user = _server_user()
    root = Path(tempfile.mkdtemp(prefix="origine-pg-"))
    if user:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    server = PostgresServer(root=root, bindir=bindir, port=_free_port(), user=user)
    try:
        _run(server._cmd("initdb", "-D", str(root / "data"), "-U", "origine", "--auth=trust",
                         "--no-sync", "-E", "UTF8"))
        options = f"-p {server.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        _run(server._cmd("pg_ctl", "-D", str(root / "data"), "-o", options,
                         "-l", str(root / "server.log"), "-w", "-t", "60", "start"))
    except (Unavailable, OSError, subprocess.TimeoutExpired) as exc:
        log = root / "server.log"
        detail = log.read_text(errors="replace").strip().splitlines()[-2:] if log.exists() else []
        server.stop()
        raise Unavailable(f"could not start PostgreSQL from {bindir}: {exc} {' / '.join(detail)}".strip()) from exc
    return server
