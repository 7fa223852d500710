"""Export files in an S3-compatible bucket (AWS S3, MinIO, Ceph, GCS's S3 API), through boto3.

Credentials come only from where boto3 looks for them: the environment (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``), a web identity or the pod's role; never from
the policy file. Each object is written once, under ``PREFIX/AREA/RANDOM.ext`` (a name that
says nothing about whose data it is), with server-side encryption as ``[exports] sse`` says,
and read back whole before it counts. A delete removes every version of the object, so a
versioned bucket keeps no copy of erased data.

Faults are sorted for the shells: a bucket that does not answer is an ``Outage`` (exit 1, a
later run carries on), one that is missing or refuses the credentials a ``StoreRefused``
(configuration, exit 2).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import tempfile
from collections.abc import Callable, Collection, Iterator
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, NoCredentialsError
from botocore.exceptions import ConnectionError as BotoConnectionError

from compliance import failpoints
from compliance.policy.exports import ExportSettings
from compliance.storage import (
    ABANDONED_WRITE_AGE,
    BLOCK,
    Area,
    ExportStore,
    StoredFile,
    StoredFileDamaged,
    StoredObject,
    StoreRefused,
    StoreUnavailable,
    Writer,
)
from compliance.storage.folder import FolderStore

SCHEME = "s3://"
_SUFFIX = re.compile(r"\.[a-z0-9]{1,8}")
#: The server is having trouble, not us: an outage, tried again by a later run.
_BUSY = frozenset({"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout"})
_CREDENTIALS = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
     "InvalidToken", "TokenRefreshRequired", "AllAccessDisabled", "AccountProblem"}
)  # fmt: skip
_GONE = frozenset({"NoSuchKey", "404", "NotFound"})
#: No answer at all: refused or timed-out connections, a connection cut mid-answer.
_UNREACHABLE = (HTTPClientError, BotoConnectionError)


class S3Store(ExportStore):
    kind = "s3"

    def __init__(self, settings: ExportSettings, *, local: FolderStore) -> None:
        assert settings.bucket is not None
        self.bucket = settings.bucket
        self.prefix = settings.prefix
        self.endpoint_url = settings.endpoint_url
        self.sse = settings.sse
        #: Files written to the folder before the switch to a bucket: still read and deleted.
        self.local = local
        self._client = boto3.session.Session().client(
            "s3",
            endpoint_url=settings.endpoint_url,
            region_name=settings.region,
            config=Config(
                connect_timeout=5,
                read_timeout=60,
                retries={"max_attempts": 3, "mode": "standard"},
                # MinIO and friends serve buckets as paths; AWS picks its own style.
                s3={"addressing_style": "path" if settings.endpoint_url else "auto"},
            ),
        )

    # ------------------------------------------------------------ names

    def describe(self) -> str:
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"the export bucket {SCHEME}{self.bucket}/{self.prefix}{where}"

    def _key(self, location: str) -> str:
        """The object key of one of our locations (``s3://BUCKET/KEY``)."""
        bucket, _, key = location.removeprefix(SCHEME).partition("/")
        if bucket != self.bucket or not key:
            raise StoreRefused(
                f"an export file is in bucket '{bucket}', but [exports] bucket is '{self.bucket}'"
            )
        return key

    def _location(self, key: str) -> str:
        return f"{SCHEME}{self.bucket}/{key}"

    # ------------------------------------------------------------ calls

    def _call(self, what: str, call: Callable[..., Any], *, missing: bool = False,
              **params: Any) -> Any:  # fmt: skip
        """One request to the bucket, its failure said in one line an operator can act on.

        With ``missing``, an object that is not there answers None (once the bucket is
        known to be there: a HEAD's 404 does not say which of the two is missing).
        """
        try:
            return call(Bucket=self.bucket, **params)
        except NoCredentialsError:
            raise self._no_credentials() from None
        except _UNREACHABLE as exc:
            raise StoreUnavailable(f"{self.describe()} is unreachable: {_one_line(exc)}") from None
        except ClientError as exc:
            if missing and _code(exc) in _GONE:
                self._call("look at the bucket", self._client.head_bucket)
                return None
            raise self._refusal(what, exc) from None
        except BotoCoreError as exc:
            raise StoreRefused(f"{self.describe()}: cannot {what}: {_one_line(exc)}") from None

    def _no_credentials(self) -> StoreRefused:
        return StoreRefused(
            f"no credentials for {self.describe()}: set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or give the pod a role"
        )

    def _refusal(self, what: str, exc: ClientError) -> Exception:
        code = _code(exc)
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if status >= 500 or code in _BUSY:
            return StoreUnavailable(f"{self.describe()} is unavailable: {code} (HTTP {status})")
        if code == "NoSuchBucket" or (status == 404 and what == "look at the bucket"):
            return StoreRefused(f"{self.describe()} does not exist (NoSuchBucket)")
        if code in _CREDENTIALS or status == 403:
            return StoreRefused(f"{self.describe()} refused the credentials: {code}")
        message = _one_line(exc.response.get("Error", {}).get("Message") or "")
        return StoreRefused(f"{self.describe()} refused to {what}: {code} {message}".strip())

    # ------------------------------------------------------------ the store

    def write(self, area: Area, name: str, writer: Writer) -> StoredFile:
        """Spool to this process's temp folder, upload once, read back: it counts only if the
        bucket holds exactly what was written."""
        suffix = PurePosixPath(name).suffix.lower()
        key = f"{self.prefix}{area}/{secrets.token_hex(16)}"
        key += suffix if _SUFFIX.fullmatch(suffix) else ""
        extra: dict[str, Any] = {"ServerSideEncryption": self.sse} if self.sse else {}
        with tempfile.TemporaryFile(prefix="privacy-desk-") as spool:  # owner-only, unlinked
            writer(spool)
            size = spool.tell()
            spool.seek(0)
            sha = _sha256(spool)
            spool.seek(0)
            self._call(
                "write an export", self._client.put_object, Key=key, Body=spool,
                ContentLength=size, ContentType=_content_type(suffix), **extra,
            )  # fmt: skip
        failpoints.hit("store.before_check")
        landed = self.digest(self._location(key))
        if landed != (size, sha):
            self.delete(self._location(key))
            raise StoredFileDamaged(
                f"{self.describe()} did not keep the export as written; it was removed and "
                "counts for nothing"
            )
        return StoredFile(self._location(key), size, sha)

    def size(self, location: str) -> int | None:
        if not location.startswith(SCHEME):
            return self.local.size(location)
        head = self._call(
            "read an export", self._client.head_object, Key=self._key(location), missing=True
        )
        return None if head is None else int(head["ContentLength"])

    def chunks(self, location: str) -> Iterator[bytes] | None:
        if not location.startswith(SCHEME):
            return self.local.chunks(location)
        answer = self._call(
            "read an export", self._client.get_object, Key=self._key(location), missing=True
        )
        if answer is None:
            return None
        body = answer["Body"]

        def blocks() -> Iterator[bytes]:
            try:
                yield from body.iter_chunks(BLOCK)
            except (*_UNREACHABLE, OSError) as exc:
                raise StoreUnavailable(
                    f"{self.describe()} stopped answering mid-file: {_one_line(exc)}"
                ) from None
            finally:
                body.close()

        return blocks()

    def delete(self, location: str) -> bool:
        """Every version and delete marker of the key goes: erased data stays in no version."""
        if not location.startswith(SCHEME):
            return self.local.delete(location)
        key = self._key(location)
        listed = self._call(
            "list an export's versions", self._client.list_object_versions, Prefix=key
        )
        versions = [v for v in listed.get("Versions", []) if v["Key"] == key]
        markers = [m for m in listed.get("DeleteMarkers", []) if m["Key"] == key]
        for version in [*versions, *markers]:
            self._call(
                "delete an export", self._client.delete_object, Key=key,
                VersionId=version["VersionId"],
            )  # fmt: skip
        return bool(versions)

    def listing(self, area: Area) -> list[StoredObject]:
        found: list[StoredObject] = []
        params: dict[str, Any] = {"Prefix": f"{self.prefix}{area}/"}
        while True:
            page = self._call("list exports", self._client.list_objects_v2, **params)
            found += [
                StoredObject(self._location(item["Key"]), item["LastModified"])
                for item in page.get("Contents", [])
            ]
            if not page.get("IsTruncated"):
                return found
            params["ContinuationToken"] = page["NextContinuationToken"]

    def abandoned(self, now: datetime, known: Collection[str]) -> list[str]:
        """Objects no row names, written before ``ABANDONED_WRITE_AGE``: a run killed between
        its upload and its commit (a younger one may be a write still under way)."""
        cutoff = now - ABANDONED_WRITE_AGE
        named = set(known)
        return sorted(
            found.location
            for area in Area
            for found in self.listing(area)
            if found.location not in named and found.written_at <= cutoff
        )

    def presigned_url(self, location: str, *, filename: str, seconds: int) -> str | None:
        """A GET of the object signed for ``seconds``, saved as ``filename`` by the browser."""
        if not location.startswith(SCHEME):
            return None
        params = {
            "Bucket": self.bucket,
            "Key": self._key(location),
            "ResponseContentDisposition": f'attachment; filename="{filename}"',
            "ResponseContentType": _content_type(PurePosixPath(filename).suffix),
        }
        try:
            url = self._client.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=seconds
            )
        except NoCredentialsError:
            raise self._no_credentials() from None
        return str(url)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _one_line(exc: object) -> str:
    return " ".join(str(exc).split())[:300]


def _sha256(handle: Any) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: handle.read(BLOCK), b""):
        digest.update(block)
    return digest.hexdigest()


def _content_type(suffix: str) -> str:
    return {".zip": "application/zip", ".json": "application/json"}.get(
        suffix, "application/octet-stream"
    )
