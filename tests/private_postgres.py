"""A throwaway PostgreSQL server of a test's own: initdb + pg_ctl in a temp dir, on a free port.

Tests that stop, restart or otherwise hurt the server use this, never the shared server on
5432 that other tests (and other people) are using. It listens on 127.0.0.1 only, trusts
local connections, and is deleted when the block ends.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SHARED_PORT = 5432
BIN_GLOB = "/usr/lib/postgresql/*/bin"


def postgres_bin_dir() -> Path | None:
    """The newest installed server's bin directory, or None when no server is installed."""
    candidates = [p for p in Path("/").glob(BIN_GLOB.lstrip("/")) if (p / "initdb").exists()]
    if not candidates:
        return None
    return max(candidates, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)


def free_port() -> int:
    """A port nobody listens on right now (the kernel's pick), never the shared server's."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port != SHARED_PORT:
            return port


@dataclass
class PrivatePostgres:
    bin_dir: Path
    directory: Path
    port: int
    run_as: str | None  # initdb refuses root: run the server as this user then

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 120) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            log = self.directory / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(args[:2])} failed: {result.stderr}{result.stdout}{tail}")

    def _pg_ctl(self, action: str, *extra: str) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl", action, "-D", str(self.data_dir), "-l", str(self.directory / "server.log"),
            "-o", options, "-w", "-t", "60", *extra,
        )  # fmt: skip

    def start(self) -> None:
        self._pg_ctl("start")

    def restart(self) -> None:
        """A real restart: every connection is cut and the server is away for a moment."""
        self._pg_ctl("restart", "-m", "fast")

    def stop(self) -> None:
        self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "immediate", "-w")


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """Start a private server for the block, then stop it and delete every file it had."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        raise FileNotFoundError(f"no PostgreSQL server installed under {BIN_GLOB}")
    run_as = "postgres" if os.geteuid() == 0 else None
    directory = Path(tempfile.mkdtemp(prefix="pd-private-pg-"))
    if run_as:
        user = pwd.getpwnam(run_as)
        os.chown(directory, user.pw_uid, user.pw_gid)
    server = PrivatePostgres(bin_dir, directory, free_port(), run_as)
    started = False
    try:
        server._run(
            "initdb", "-D", str(server.data_dir), "-U", "postgres", "-A", "trust",
            "-E", "UTF8", "--no-sync", "--no-instructions",
        )  # fmt: skip
        server.start()
        started = True
        yield server
    finally:
        try:
            if started:
                server.stop()
        finally:
            shutil.rmtree(directory, ignore_errors=True)
