"""Exports handed over to staff: read back and checked, or a short-lived link to a big one.

Support downloads a finished export to hand it over by hand; the subject's own download page
(compliance.dsar.delivery) reads it the same way. Each opening by staff is audited.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from compliance.dsar.requests import audit_request, get_dsar, has_finished_export
from compliance.errors import Conflict, NotFound
from compliance.policy.model import Policy
from compliance.roles import COMPLIANCE_OFFICER, SUPPORT, Identity, require
from compliance.storage import ExportStore, export_store
from compliance.store.models import DsarRequest

#: How long a presigned URL to an export serves it: long enough to start the download.
PRESIGNED_URL_SECONDS = 60


@dataclass(frozen=True)
class Download:
    """An export handed over: its bytes (at most ``[exports] max_download_mb``), or for a
    larger one in a bucket a presigned ``url`` that serves it for 60 seconds."""

    reference: str
    filename: str
    content: bytes | None
    url: str | None = None


def fetch_export(store: ExportStore, request: DsarRequest, *, max_bytes: int) -> Download:
    """The export of a request, read back and checked against its SHA-256, or a URL to it.

    Never more than ``max_bytes`` is held in memory: a larger export is served by the bucket
    itself, through a presigned URL made only now, after every check passed.
    """
    filename = f"{request.reference}.zip"
    if not has_finished_export(request):
        raise Conflict(f"{request.reference} has no finished export (it is {request.status})")
    size = store.size(request.export_path) if request.export_path else None
    if size is None:
        raise NotFound(f"the export of {request.reference} was removed (exports expire)")
    assert request.export_path is not None
    if size > max_bytes:
        url = store.presigned_url(
            request.export_path, filename=filename, seconds=PRESIGNED_URL_SECONDS
        )
        if url is None:
            raise Conflict(
                f"the export of {request.reference} is larger than [exports] max_download_mb "
                "allows to serve from here"
            )
        return Download(request.reference, filename, None, url)
    content = store.read(request.export_path, sha256=request.export_sha256)
    if content is None:
        raise NotFound(f"the export of {request.reference} was removed (exports expire)")
    return Download(request.reference, filename, content)


def open_export_for_download(
    session: Session, policy: Policy, reference: str, *, actor: Identity
) -> Download:
    """The finished export, for support staff to hand over; each opening is audited."""
    by = require(actor, SUPPORT, COMPLIANCE_OFFICER, to="download DSAR exports")
    request = get_dsar(session, reference)
    try:
        download = fetch_export(
            export_store(policy), request, max_bytes=policy.exports.max_download_bytes
        )
    except BaseException:
        session.rollback()
        raise
    audit_request(session, request, "dsar.export_downloaded", by, {"sha256": request.export_sha256})
    session.commit()
    return download
