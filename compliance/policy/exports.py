"""The ``[exports]`` section: where export files live (a local folder, or an S3-compatible bucket).

A folder is the default and the demo's: one machine writes, serves and deletes every file. As
soon as the jobs, the dashboard and the download page run on different machines (pods), the
files must live where all of them reach: ``storage = "s3"`` with ``bucket``, optional
``prefix``, ``endpoint_url`` (MinIO, Ceph, GCS's S3 API; AWS without it), ``region``, ``sse``
(server-side encryption: ``AES256`` or ``aws:kms``) and ``max_download_mb``. Credentials never
come from this file: boto3 reads them from the environment or the pod's role.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from compliance.errors import ConfigError, quoted
from compliance.policy.fields import Field, read_section

STORAGES = ("folder", "s3")
SSE_MODES = ("AES256", "aws:kms")
DEFAULT_MAX_DOWNLOAD_MB = 200
#: Far beyond any export a browser should hold; a typo of 200000 is caught.
MAX_DOWNLOAD_MB = 100_000
#: Keys people reach for that hold credentials: named in the refusal, pointed elsewhere.
_CREDENTIAL_KEYS = frozenset(
    {"access_key", "access_key_id", "aws_access_key_id", "secret_key", "secret_access_key",
     "aws_secret_access_key", "session_token", "aws_session_token", "password"}
)  # fmt: skip
# S3's bucket naming rules: 3-63 lowercase letters, digits, dots and hyphens, letters or
# digits at both ends.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_REGION = re.compile(r"[a-z0-9-]{1,40}")
_PREFIX = re.compile(r"[A-Za-z0-9!_.*'()/-]{0,200}")


@dataclass(frozen=True)
class ExportSettings:
    storage: str = "folder"
    bucket: str | None = None
    #: Object names start with this (``privacy-desk/``), so one bucket may serve several uses.
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    sse: str | None = None
    #: Larger exports are handed out by a presigned URL (60 s) instead of through the page.
    max_download_mb: int = DEFAULT_MAX_DOWNLOAD_MB

    @property
    def max_download_bytes(self) -> int:
        return self.max_download_mb * 1024 * 1024


def _storage(value: str, key: str, _context: Any) -> str:
    if value not in STORAGES:
        raise ConfigError(f"{key}: must be one of {', '.join(STORAGES)}, got {quoted(value)}")
    return value


def _bucket(value: str, key: str, _context: Any) -> str:
    if not _BUCKET.fullmatch(value) or ".." in value:
        raise ConfigError(f"{key}: {quoted(value)} is not an S3 bucket name")
    return value


def _prefix(value: str, key: str, _context: Any) -> str:
    """A folder-like start of every object name: no leading slash, no ``..``, ends in ``/``."""
    if not _PREFIX.fullmatch(value) or value.startswith("/") or ".." in value or "//" in value:
        raise ConfigError(
            f"{key}: {quoted(value)} is not an object name prefix (letters, digits, / - _ . "
            "and no leading slash)"
        )
    return value if not value or value.endswith("/") else value + "/"


def _endpoint(value: str, key: str, _context: Any) -> str:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise ConfigError(f"{key}: {quoted(value)} is not a URL") from None
    if parts.username or parts.password:
        raise ConfigError(
            f"{key}: credentials never go in the policy file; boto3 reads them from the "
            "environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or the pod's role"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        raise ConfigError(f"{key}: expected http(s)://HOST[:PORT], got {quoted(value)}")
    return value.rstrip("/")


def _region(value: str, key: str, _context: Any) -> str:
    if not _REGION.fullmatch(value):
        raise ConfigError(f"{key}: {quoted(value)} is not a region name")
    return value


def _sse(value: str, key: str, _context: Any) -> str:
    if value not in SSE_MODES:
        raise ConfigError(f"{key}: must be one of {', '.join(SSE_MODES)}, got {quoted(value)}")
    return value


def _download_mb(value: int, key: str, _context: Any) -> int:
    if not 0 <= value <= MAX_DOWNLOAD_MB:
        raise ConfigError(f"{key}: must be 0 to {MAX_DOWNLOAD_MB}, got {value}")
    return value


_EXPORTS_FIELDS = (
    Field("dir"),  # read by the loader, where COMPLIANCE_EXPORT_DIR wins over it
    Field("storage", default=ExportSettings.storage, check=_storage),
    Field("bucket", check=_bucket),
    Field("prefix", default=ExportSettings.prefix, check=_prefix),
    Field("endpoint_url", check=_endpoint),
    Field("region", check=_region),
    Field("sse", check=_sse),
    Field("max_download_mb", int, default=DEFAULT_MAX_DOWNLOAD_MB, check=_download_mb),
)
_S3_ONLY = ("bucket", "prefix", "endpoint_url", "region", "sse")


def parse_exports(raw: Any) -> ExportSettings:
    """``[exports]`` checked key by key; bucket settings only where a bucket is used."""
    if isinstance(raw, dict):
        for name in raw:
            if str(name).lower() in _CREDENTIAL_KEYS:
                raise ConfigError(
                    f"exports.{name}: credentials never go in the policy file; boto3 reads them "
                    "from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or the "
                    "pod's role"
                )
    values = read_section(raw, _EXPORTS_FIELDS, "exports")
    values.pop("dir")
    settings = ExportSettings(**values)
    if settings.storage == "s3":
        if settings.bucket is None:
            raise ConfigError('exports.bucket: missing (storage = "s3" needs a bucket)')
        return settings
    for name in _S3_ONLY:
        if name in raw:
            raise ConfigError(f'exports.{name}: only read with storage = "s3"')
    if settings.max_download_mb == 0:
        raise ConfigError(
            'exports.max_download_mb: 0 (every download by a presigned URL) needs storage = "s3"'
        )
    return settings
