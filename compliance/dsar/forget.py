"""After an erasure: the request desk forgets the subject too, and their export files go.

Erasing the product's rows is not enough when our own tables still hold the subject's
email, how their identity was checked, the IP they wrote from, and ZIPs of all their
data. What stays is what proves the request was honoured: reference, dates, decisions,
sizes and SHA-256 of exports sent. Subjects appear there by id only.

Every text someone typed that may describe the subject goes too: reasons of requests,
batches and holds, staff notes, exclusion and task notes, notices' reasons, and the texts the
audit trail names by keyed hash (compliance.audit.texts). What stays is exactly the README's
list: ids, references, kinds, dates, decisions and who made them, hashes of removed texts,
notices' kinds and dates, decision-ledger rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from compliance.audit.chain import record_event
from compliance.audit.texts import REMOVED, forget_texts
from compliance.logs import log_event
from compliance.policy.loader import Policy
from compliance.storage import Area, export_store
from compliance.storage.folder import SAFE_NAME
from compliance.store.models import (
    ComplianceProfile,
    DecisionLedger,
    DeletionBatch,
    DeletionRecord,
    DsarNote,
    DsarNotice,
    DsarRequest,
    ErasureTask,
    LegalHold,
    UserExport,
)

#: What a staff note (or any typed text) reads once the subject it may describe was erased.
ERASED_NOTE = REMOVED


@dataclass(frozen=True)
class Forgotten:
    requests: int
    export_files: int
    texts: int = 0


def forget_subject(
    session: Session, policy: Policy, subject_id: str, *, actor: str, reference: str
) -> Forgotten:
    """Scrub the subject's requests and delete every export file of theirs, in the caller's
    transaction (files first: a rerun after a crash finds them gone and changes nothing).

    Files are the access ZIPs, the systems' parts of them and support's direct exports, in
    the export store (every version of each, in a versioned bucket)."""
    requests = list(
        session.scalars(select(DsarRequest).where(DsarRequest.subject_id == str(subject_id)))
    )
    files: list[str] = []
    for request in requests:
        if request.export_path:
            files.append(request.export_path)
            request.export_path = None  # size and sha256 stay as evidence of what was sent
        request.subject_email = None
        request.identity_check = None
        request.client_ip = None
        request.user_agent = None
        if request.reviewed_reason:
            request.reviewed_reason = REMOVED
        if request.extension_reason:
            request.extension_reason = REMOVED
    request_ids = [r.id for r in requests]
    if requests:
        session.execute(
            update(DsarNote).where(DsarNote.dsar_request_id.in_(request_ids)).values(body=REMOVED)
        )
        # A notice keeps its kind and dates; what it told the subject goes.
        session.execute(
            update(DsarNotice)
            .where(DsarNotice.dsar_request_id.in_(request_ids))
            .values(reason=None)
        )
        parts = ErasureTask.dsar_request_id.in_(request_ids), ErasureTask.file_path.is_not(None)
        files += [p for p in session.scalars(select(ErasureTask.file_path).where(*parts)) if p]
        session.execute(update(ErasureTask).where(*parts).values(file_path=None, file_name=None))
    texts = _forget_typed_texts(session, str(subject_id), request_ids)
    store = export_store(policy)
    mine = UserExport.subject_id == str(subject_id)
    files += session.scalars(select(UserExport.location).where(mine))
    session.execute(delete(UserExport).where(mine))
    # In a folder, support's files written before user_exports existed say whose by name.
    named = SAFE_NAME.sub("_", str(subject_id))
    files += [f.location for f in store.listing(Area.SUPPORT) if f.subject == named]
    deleted = sum(store.delete(location) for location in dict.fromkeys(files))
    record_event(
        session,
        actor=actor,
        action="dsar.subject_forgotten",
        target_type="dsar_request",
        target_id=reference,
        details={
            "requests_scrubbed": len(requests),
            "export_files_deleted": deleted,
            "texts_removed": texts,
            "references": sorted(r.reference for r in requests)[:100],
        },
    )
    log_event("dsar.subject_forgotten", reference=reference, export_files_deleted=deleted)
    return Forgotten(len(requests), deleted, texts)


def _forget_typed_texts(session: Session, subject_id: str, request_ids: list[int]) -> int:
    """Blank what people typed about the subject outside their requests; texts kept outside
    the audit chain are deleted. How many such texts went (for the audit event)."""
    profiles = list(
        session.scalars(
            select(ComplianceProfile.id).where(ComplianceProfile.subject_id == subject_id)
        )
    )
    if profiles:
        records = select(DeletionRecord.id).where(
            DeletionRecord.compliance_profile_id.in_(profiles)
        )
        batches = select(DeletionRecord.deletion_batch_id).where(
            DeletionRecord.compliance_profile_id.in_(profiles)
        )
        for column in (DeletionRecord.review_note,):
            session.execute(
                update(DeletionRecord)
                .where(DeletionRecord.compliance_profile_id.in_(profiles), column.is_not(None))
                .values({column: REMOVED})
            )
        session.execute(
            update(DeletionBatch)
            .where(DeletionBatch.id.in_(batches), DeletionBatch.reviewed_reason.is_not(None))
            .values(reviewed_reason=REMOVED)
        )
        session.execute(
            update(DecisionLedger)
            .where(
                DecisionLedger.compliance_profile_id.in_(profiles), DecisionLedger.note.is_not(None)
            )
            .values(note=REMOVED)
        )
        session.execute(
            update(LegalHold)
            .where(LegalHold.compliance_profile_id.in_(profiles))
            .values(reason=REMOVED)
        )
        session.execute(
            update(LegalHold)
            .where(
                LegalHold.compliance_profile_id.in_(profiles), LegalHold.lifted_reason.is_not(None)
            )
            .values(lifted_reason=REMOVED)
        )
        owners = [ErasureTask.deletion_record_id.in_(records)]
    else:
        owners = []
    if request_ids:
        owners.append(ErasureTask.dsar_request_id.in_(request_ids))
    if owners:
        session.execute(
            update(ErasureTask)
            .where(or_(*owners), ErasureTask.note.is_not(None))
            .values(note=REMOVED)
        )
        session.execute(update(ErasureTask).where(or_(*owners)).values(subject=None))
    return forget_texts(session, subject_id)
