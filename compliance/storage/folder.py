"""Export files in a local folder: the default, the demo's, and ``export-user-data --output``.

Files are written under a temporary name, fsynced and renamed, readable by their owner only,
so a reader never sees half a file; a write killed halfway leaves only its temporary file,
which cleanup removes once abandoned. Names are today's: ``REFERENCE.zip``, ``tasks/KEY-NAME``
and ``subject-ID-STAMP.json|zip`` (their time is the one in the name, which a copy or a
backup restore does not reset).
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Collection, Iterator
from datetime import UTC, datetime
from pathlib import Path

from compliance import failpoints
from compliance.storage import (
    ABANDONED_WRITE_AGE,
    BLOCK,
    Area,
    ExportStore,
    StoredFile,
    StoredObject,
    Writer,
)

SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")
_USER_EXPORT = re.compile(r"subject-(?P<subject>.+)-(?P<stamp>\d{8}T\d{6}Z)\.(?:json|zip)")
_ACCESS_EXPORT = re.compile(r"DSAR-\d{4}-\d{6,}\.zip")
STAMP = "%Y%m%dT%H%M%SZ"


def user_export_name(subject_id: str, made_at: datetime, suffix: str) -> str:
    """``subject-ID-STAMP.suffix``: what ``export-user-data`` calls a file in a folder."""
    return f"subject-{SAFE_NAME.sub('_', str(subject_id))}-{made_at.strftime(STAMP)}.{suffix}"


def write_atomic(path: Path, write: Writer) -> tuple[int, str]:
    """Write to a temporary name, fsync, rename; return the final size and sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # personal data: owner only
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        failpoints.hit("exports.before_rename")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(BLOCK), b""):
            digest.update(block)
    return path.stat().st_size, digest.hexdigest()


class FolderStore(ExportStore):
    kind = "folder"

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def describe(self) -> str:
        return str(self.directory)

    def _folder(self, area: Area) -> Path:
        return self.directory / "tasks" if area == Area.TASKS else self.directory

    def write(self, area: Area, name: str, writer: Writer) -> StoredFile:
        path = self._folder(area) / name
        size, sha = write_atomic(path, writer)
        return StoredFile(str(path), size, sha)

    def size(self, location: str) -> int | None:
        path = Path(location)
        try:
            return path.stat().st_size if path.is_file() else None
        except OSError:
            return None

    def chunks(self, location: str) -> Iterator[bytes] | None:
        path = Path(location)
        if not path.is_file():
            return None
        handle = path.open("rb")

        def blocks() -> Iterator[bytes]:
            with handle:
                yield from iter(lambda: handle.read(BLOCK), b"")

        return blocks()

    def delete(self, location: str) -> bool:
        try:
            Path(location).unlink()
        except FileNotFoundError:
            return False
        return True

    def listing(self, area: Area) -> list[StoredObject]:
        folder = self._folder(area)
        if not folder.is_dir():
            return []
        found = []
        for path in sorted(folder.iterdir()):
            if not path.is_file() or path.name.startswith("."):
                continue
            match = _USER_EXPORT.fullmatch(path.name)
            if area == Area.SUPPORT and match:
                stamp = datetime.strptime(match["stamp"], STAMP).replace(tzinfo=UTC)
                found.append(StoredObject(str(path), stamp, match["subject"]))
            elif area == Area.TASKS or (
                area == Area.EXPORTS and _ACCESS_EXPORT.fullmatch(path.name)
            ):
                found.append(StoredObject(str(path), _modified(path)))
        return found

    def abandoned(self, now: datetime, known: Collection[str]) -> list[str]:
        """Temporary files of writes that never finished (the worker died mid-ZIP).

        They hold personal data and are on no request, so nothing else would ever remove them.
        A finished file is always named by a row or by its own name, so ``known`` is not read.
        """
        cutoff = (now - ABANDONED_WRITE_AGE).timestamp()
        return sorted(
            str(path)
            for folder in (self.directory, self.directory / "tasks")
            if folder.is_dir()
            for path in folder.glob(".*.tmp")
            if path.is_file() and path.stat().st_mtime <= cutoff
        )


def _modified(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)
