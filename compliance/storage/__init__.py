"""Export files, wherever they live: a local folder or an S3-compatible bucket (``[exports]``).

Everything that writes, reads, checks, serves or deletes an export file goes through an
``ExportStore``: the access ZIPs, a system's part of one (a webhook's data, a person's upload),
and support's direct exports. A folder (``FolderStore``, the default and the demo's) holds
them on one machine; a bucket (``S3Store``) lets jobs, the dashboard and the download page run
on different machines, sharing nothing but the database and the bucket.

The database keeps each file's *location*: an absolute path, or ``s3://BUCKET/KEY``. A file is
written once, its size and SHA-256 read back from where it landed before anyone records it,
so a half-written file never counts as an export.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import IO, TYPE_CHECKING

from compliance.errors import ConfigError, Outage
from compliance.policy.exports import ExportSettings

if TYPE_CHECKING:
    from compliance.policy.model import Policy

#: No export takes this long to write: what a killed write left behind older than this is
#: abandoned (a folder's temporary file, an object in the bucket that no row names).
ABANDONED_WRITE_AGE = timedelta(hours=6)
#: Reads and digests go in blocks of this size, so no file is held whole for a checksum.
BLOCK = 1 << 20

#: Writes a file's content into the handle it is given (what it returns is ignored).
Writer = Callable[[IO[bytes]], object]


class Area(StrEnum):
    """What a file is; a bucket keeps each under a prefix of its own."""

    EXPORTS = "exports"  # the ZIP answering an access request
    TASKS = "tasks"  # a system's part of an access export, kept until the ZIP is built
    SUPPORT = "support"  # support's direct export (export-user-data)


class StoreRefused(ConfigError):
    """The store is there but will not serve us: a missing bucket, refused credentials.

    A configuration problem (exit 2): nothing is retried until someone fixes it."""


class StoreUnavailable(Outage):
    """The store does not answer (exit 1): a later run carries on."""


class StoredFileDamaged(Outage):
    """What the store holds is not what was written (a cut-off upload, a changed object)."""


#: The store failed us, not the request: nothing is counted against it, and the job stops
#: (exit 2 for a configuration to fix, exit 1 for an outage a later run waits out).
STORE_FAULTS: tuple[type[ConfigError | Outage], ...] = (StoreRefused, Outage)


@dataclass(frozen=True)
class StoredFile:
    """A file as the store holds it: where, how big, and its SHA-256 (hex)."""

    location: str
    bytes: int
    sha256: str


@dataclass(frozen=True)
class StoredObject:
    """A file found by listing an area, and when it was written."""

    location: str
    written_at: datetime
    #: Whose it is, where the name says (a folder's ``subject-ID-…`` files); a bucket's
    #: names say nothing, and the database (``user_exports``) says whose they are.
    subject: str | None = None


class ExportStore(ABC):
    """Where export files are written, read, served and deleted; see the module's docstring."""

    #: ``folder`` or ``s3``, as ``[exports] storage`` names it.
    kind: str

    @abstractmethod
    def describe(self) -> str:
        """Where the files go, for messages (a folder's path, ``s3://bucket/prefix``)."""

    @abstractmethod
    def write(self, area: Area, name: str, writer: Writer) -> StoredFile:
        """Write a new file; ``name`` is what a folder calls it (a bucket names it at random,
        so an object's name reveals nothing about its subject). Raises if what landed is not
        what was written."""

    @abstractmethod
    def size(self, location: str) -> int | None:
        """The file's size in bytes, or None when it is gone."""

    @abstractmethod
    def chunks(self, location: str) -> Iterator[bytes] | None:
        """The file's content in blocks, or None when it is gone."""

    @abstractmethod
    def delete(self, location: str) -> bool:
        """Remove the file for good (every version of it); whether there was one."""

    @abstractmethod
    def listing(self, area: Area) -> list[StoredObject]:
        """The files this store wrote in ``area`` (for cleanup of what nothing names)."""

    @abstractmethod
    def abandoned(self, now: datetime, known: Collection[str]) -> list[str]:
        """What killed writes left behind, older than ``ABANDONED_WRITE_AGE``: a folder's
        temporary files, a bucket's objects that no location in ``known`` names."""

    def exists(self, location: str) -> bool:
        return self.size(location) is not None

    def presigned_url(self, location: str, *, filename: str, seconds: int) -> str | None:
        """A URL that serves the file for ``seconds`` without us; None where there is none."""
        return None

    def read(self, location: str, *, sha256: str | None = None) -> bytes | None:
        """The whole file (None when gone); with ``sha256``, refused unless it matches."""
        blocks = self.chunks(location)
        if blocks is None:
            return None
        digest = hashlib.sha256()
        content = bytearray()
        for block in blocks:
            digest.update(block)
            content += block
        if sha256 is not None and digest.hexdigest() != sha256:
            raise StoredFileDamaged(
                f"the file kept in {self.describe()} is not the one written (its SHA-256 differs)"
            )
        return bytes(content)

    def digest(self, location: str) -> tuple[int, str] | None:
        """Size and SHA-256 of what the store holds, read back block by block."""
        blocks = self.chunks(location)
        if blocks is None:
            return None
        digest, size = hashlib.sha256(), 0
        for block in blocks:
            digest.update(block)
            size += len(block)
        return size, digest.hexdigest()


def export_store(policy: Policy) -> ExportStore:
    """The store ``[exports]`` names; a bucket's client is made once per process."""
    from compliance.storage.folder import FolderStore

    if policy.exports.storage == "s3":
        return _bucket_store(policy.exports, Path(policy.export_dir))
    return FolderStore(Path(policy.export_dir))


@lru_cache(maxsize=8)
def _bucket_store(settings: ExportSettings, export_dir: Path) -> ExportStore:
    from compliance.storage.folder import FolderStore
    from compliance.storage.s3 import S3Store

    # Files written before the switch to a bucket are still served and deleted from the folder.
    return S3Store(settings, local=FolderStore(export_dir))
