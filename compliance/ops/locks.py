"""Per-job locks, so a cron run that overlaps the previous one changes nothing.

On PostgreSQL the lock is a session-level advisory lock held on a dedicated connection of
the compliance database; on SQLite it is an ``fcntl`` lock on a file next to the database
file. Either way the operating system or the server drops it when the process dies, so a
job killed halfway (OOM, ``kill -9``) never leaves the schedule wedged.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, text

from compliance.logs import log_event


def lock_key(namespace: str, job: str) -> int:
    """A stable signed 64-bit advisory-lock key for ``job`` within ``namespace``."""
    digest = hashlib.sha256(f"privacy-desk:{namespace}:{job}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def lock_file(engine: Engine, job: str, lock_dir: Path | None = None) -> Path:
    """Next to the SQLite file (so two checkouts sharing it share the lock), else a lock dir."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in job)
    database = engine.url.database
    if lock_dir is None and database and database != ":memory:":
        path = Path(database)
        return path.with_name(f"{path.name}.{safe}.lock")
    directory = lock_dir or Path(tempfile.gettempdir()) / "privacy-desk-locks"
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"{safe}.lock"


@contextmanager
def _postgres_lock(engine: Engine, job: str) -> Iterator[bool]:
    conn: Connection = engine.connect()
    held = False
    try:
        # Advisory locks are per database, not per schema: name the schema in the key so
        # two deployments (or two test runs) sharing one server never block each other.
        namespace = conn.scalar(text("SELECT current_database() || '.' || current_schema()"))
        key = lock_key(str(namespace), job)
        held = bool(conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}))
        conn.commit()  # the lock outlives the transaction; don't sit idle in one
        yield held
    finally:
        try:
            if held:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
        except Exception:
            # Never hand a connection that may still hold the lock back to the pool.
            conn.invalidate()
        conn.close()


@contextmanager
def _file_lock(path: Path) -> Iterator[bool]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        # The file stays: removing it would let a third run lock a fresh inode meanwhile.
        os.close(fd)


@contextmanager
def job_lock(engine: Engine, job: str, *, lock_dir: Path | None = None) -> Iterator[bool]:
    """Hold ``job``'s lock for the block; yields False (without waiting) if another run has it."""
    if engine.dialect.name == "postgresql":
        manager = _postgres_lock(engine, job)
        where = "advisory lock"
    else:
        path = lock_file(engine, job, lock_dir)
        manager = _file_lock(path)
        where = str(path)
    with manager as held:
        level = logging.DEBUG if held else logging.INFO
        log_event("job.lock", level, job=job, held=held, lock=where)
        yield held
