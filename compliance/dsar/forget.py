"""After an erasure: the request desk forgets the subject too, and their export files go.

Erasing the product's rows is not enough when our own tables still hold the subject's
email, how their identity was checked, the IP they wrote from, and ZIPs of all their
data. What stays is what proves the request was honoured: reference, dates, decisions,
sizes and SHA-256 of exports sent. Subjects appear there by id only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from compliance.audit.chain import record_event
from compliance.dsar.exports import user_export_files
from compliance.logs import log_event
from compliance.policy.loader import Policy
from compliance.store.models import DsarNote, DsarRequest

#: What a staff note reads once the subject it may describe was erased.
ERASED_NOTE = "[removed when the subject's data was erased]"


@dataclass(frozen=True)
class Forgotten:
    requests: int
    export_files: int


def forget_subject(
    session: Session, policy: Policy, subject_id: str, *, actor: str, reference: str
) -> Forgotten:
    """Scrub the subject's requests and delete every export file of theirs, in the caller's
    transaction (files first: a rerun after a crash finds them gone and changes nothing)."""
    requests = list(
        session.scalars(select(DsarRequest).where(DsarRequest.subject_id == str(subject_id)))
    )
    files: list[Path] = []
    for request in requests:
        if request.export_path:
            files.append(Path(request.export_path))
            request.export_path = None  # size and sha256 stay as evidence of what was sent
        request.subject_email = None
        request.identity_check = None
        request.client_ip = None
        request.user_agent = None
    if requests:
        session.execute(
            update(DsarNote)
            .where(DsarNote.dsar_request_id.in_([r.id for r in requests]))
            .values(body=ERASED_NOTE)
        )
    files += [path for path, _ in user_export_files(Path(policy.export_dir), str(subject_id))]
    deleted = 0
    for path in files:
        if path.exists():
            path.unlink()
            deleted += 1
    record_event(
        session,
        actor=actor,
        action="dsar.subject_forgotten",
        target_type="dsar_request",
        target_id=reference,
        details={
            "requests_scrubbed": len(requests),
            "export_files_deleted": deleted,
            "references": sorted(r.reference for r in requests)[:100],
        },
    )
    log_event("dsar.subject_forgotten", reference=reference, export_files_deleted=deleted)
    return Forgotten(len(requests), deleted)
