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

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Text, and_, cast, delete, or_, select, update
from sqlalchemy.orm import Session

from compliance.audit.chain import record_event
from compliance.audit.subject_keys import HASHED_PREFIX, hashed_key, key_secret
from compliance.audit.texts import REMOVED, forget_texts
from compliance.deletion.holds import held_subjects
from compliance.errors import ComplianceError
from compliance.logs import log_event
from compliance.policy.datamap import DataMap
from compliance.policy.model import Policy
from compliance.policy.strategies import HASH_KEY_ENV
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
    FreeTextSubject,
    JobRun,
    LegalHold,
    UserExport,
)
from compliance.store.queries import dsar_in, dsar_open, of_type, record_in, record_open
from compliance.store.sql import rows_changed
from compliance.store.states import (
    DsarKind,
    DsarStatus,
    LedgerDecision,
    RecordState,
)

#: What a staff note (or any typed text) reads once the subject it may describe was erased.
ERASED_NOTE = REMOVED


@dataclass(frozen=True)
class Forgotten:
    requests: int
    export_files: int
    texts: int = 0


def forget_subject(
    session: Session, policy: Policy, request: DsarRequest, *, actor: str
) -> Forgotten:
    """Scrub the requests of ``request``'s subject (an erasure completing) and delete every
    export file of theirs, audited on ``request``, in the caller's transaction (files first:
    a rerun after a crash finds them gone and changes nothing).

    Files are the access ZIPs, the systems' parts of them and support's direct exports, in
    the export store (every version of each, in a versioned bucket)."""
    subject_type, subject_id = request.subject_type, request.subject_id
    mine = and_(DsarRequest.subject_type == subject_type, DsarRequest.subject_id == subject_id)
    requests = list(session.scalars(select(DsarRequest).where(mine)))
    files: list[str] = []
    for each in requests:
        export_path = _scrub_request(each)
        if export_path:
            files.append(export_path)
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
    texts = _forget_typed_texts(session, request, _profiles_of(session, request), request_ids)
    store = export_store(policy)
    mine = and_(UserExport.subject_type == subject_type, UserExport.subject_id == subject_id)
    files += session.scalars(select(UserExport.location).where(mine))
    session.execute(delete(UserExport).where(mine))
    # In a folder, support's files written before user_exports existed say whose by name,
    # without the kind: a desk of several kinds (none that old) leaves another kind's alone.
    if not policy.multiple_subject_types:
        named = SAFE_NAME.sub("_", str(subject_id))
        files += [f.location for f in store.listing(Area.SUPPORT) if f.subject == named]
    deleted = sum(store.delete(location) for location in dict.fromkeys(files))
    record_event(
        session,
        actor=actor,
        action="dsar.subject_forgotten",
        target_type="dsar_request",
        target_id=request.reference,
        details={
            "requests_scrubbed": len(requests),
            "export_files_deleted": deleted,
            "texts_removed": texts,
            "references": sorted(r.reference for r in requests)[:100],
        },
    )
    log_event("dsar.subject_forgotten", reference=request.reference, export_files_deleted=deleted)
    return Forgotten(len(requests), deleted, texts)


def _scrub_request(request: DsarRequest) -> str | None:
    """Blank what identifies the subject, keeping the evidence; the export file left to delete."""
    export_path = request.export_path
    if export_path:
        request.export_path = None  # size and sha256 stay as evidence of what was sent
    request.subject_email = None
    request.identity_check = None
    request.client_ip = None
    request.user_agent = None
    if request.reviewed_reason:
        request.reviewed_reason = REMOVED
    if request.extension_reason:
        request.extension_reason = REMOVED
    return export_path


def _profiles_of(session: Session, request: DsarRequest) -> list[int]:
    """The profile of the request's subject (none if nothing but requests ever named them)."""
    return list(
        session.scalars(
            select(ComplianceProfile.id).where(
                of_type(request.subject_type), ComplianceProfile.subject_id == request.subject_id
            )
        )
    )


def _forget_typed_texts(
    session: Session, request: DsarRequest, profiles: list[int], request_ids: list[int]
) -> int:
    """Blank what people typed about the subject (their ``profiles``) outside their requests;
    texts kept outside the audit chain are deleted. How many such texts went (for the audit
    event)."""
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
    return forget_texts(session, request.subject_type, request.subject_id)


# ---------------------------------------------------------------- keys kept as a keyed hash

#: Subjects whose keys one commit hashes (one audit event each).
HASH_CHUNK = 200
#: Job-run arguments and summary fields that hold a subject key.
_KEY_FIELDS = frozenset({"subject_id"})


#: A data subject as the desk names one: (kind of data subject, key).
Subject = tuple[str, str]


@dataclass(frozen=True)
class KeyHashingPlan:
    """Erased subjects whose key is still kept as typed: those a run hashes now (``ready``),
    and how many wait for open work or a hold in force to end."""

    ready: tuple[Subject, ...]
    waiting: int
    #: Why no key is hashed this run, though erased subjects' keys are kept as typed.
    refused: str | None = None


@dataclass(frozen=True)
class KeysHashed:
    subjects: int
    waiting: int
    #: Why keys stay as typed this run (no COMPLIANCE_HASH_KEY outside demo mode); None if hashed.
    refused: str | None = None


def _erased_in_buckets(session: Session, buckets: Sequence[str]) -> set[Subject]:
    """Subjects with an erasure applied in one of ``buckets``, key still as typed: a record
    applied and not purged yet, or the decision ledger's row purge folded it into."""
    if not buckets:
        return set()
    unhashed = ComplianceProfile.subject_id.not_like(f"{HASHED_PREFIX}%")
    subject = (ComplianceProfile.subject_type, ComplianceProfile.subject_id)
    applied = (
        select(*subject)
        .join(DeletionRecord, DeletionRecord.compliance_profile_id == ComplianceProfile.id)
        .where(DeletionRecord.bucket.in_(buckets), record_in(RecordState.APPLIED), unhashed)
    )
    ledger = (
        select(*subject)
        .join(DecisionLedger, DecisionLedger.compliance_profile_id == ComplianceProfile.id)
        .where(
            DecisionLedger.bucket.in_(buckets),
            DecisionLedger.decision == LedgerDecision.ERASED,
            unhashed,
        )
    )
    return {(kind, key) for kind, key in session.execute(applied.union(ledger))}


def _why_not_hashed(policy: Policy, erased: int) -> str | None:
    """Why the keys of ``erased`` subjects cannot be hashed now, or None when they can."""
    if not erased:
        return None
    if key_secret(policy) is None:
        return (
            f"{HASH_KEY_ENV} is not set (or too short), so the keys of {erased} erased "
            "subjects stay as typed; set it (e.g. openssl rand -hex 32)"
        )
    return None


def plan_key_hashing(
    session: Session,
    policy: Policy,
    *,
    now: datetime,
    completing: Sequence[tuple[str, Subject]] = (),
) -> KeyHashingPlan:
    """Erased subjects whose key is still kept as typed: an erasure request of theirs
    completed, or a bucket erased them (``Policy.subject_erasing_buckets``).

    One waits while anything of theirs is open (a request, or a deletion record not applied:
    an excluded or rejected one keeps them out of its bucket until purge) or a hold is in
    force: those still need the key as typed. A key that already reads like a hashed one
    (``anon-…``) is left as it is. ``completing`` names (reference, subject) of erasure
    requests a run completes before it hashes: the dry run counts them as the run will.
    """
    finishing = [reference for reference, _ in completing]
    requested = session.execute(
        select(DsarRequest.subject_type, DsarRequest.subject_id).where(
            DsarRequest.kind == DsarKind.ERASURE,
            dsar_in(DsarStatus.COMPLETED),
            DsarRequest.subject_id.not_like(f"{HASHED_PREFIX}%"),
        )
    )
    erased = sorted(
        {(kind, key) for kind, key in requested}
        | {subject for _, subject in completing if not subject[1].startswith(HASHED_PREFIX)}
        | _erased_in_buckets(session, policy.subject_erasing_buckets)
    )
    refused = _why_not_hashed(policy, len(erased))
    if refused is not None:  # said before the busy check: that would read every key, each run
        session.rollback()
        return KeyHashingPlan((), 0, refused)
    busy = _busy(session, erased, finishing, now)
    session.rollback()
    return KeyHashingPlan(tuple(s for s in erased if s not in busy), len(busy))


def _busy(
    session: Session, erased: Sequence[Subject], finishing: Sequence[str], now: datetime
) -> set[Subject]:
    """Those of ``erased`` with a request or a deletion record open, or a hold in force."""
    busy: set[Subject] = set()
    of_profile = DeletionRecord.compliance_profile_id == ComplianceProfile.id
    for kind in sorted({k for k, _ in erased}):
        keys = [key for k, key in erased if k == kind]
        for i in range(0, len(keys), HASH_CHUNK):
            chunk = keys[i : i + HASH_CHUNK]
            mine = and_(DsarRequest.subject_type == kind, DsarRequest.subject_id.in_(chunk))
            opened = DsarRequest.reference.not_in(finishing)
            requested = select(DsarRequest.subject_id).where(mine, dsar_open, opened)
            recorded = (
                select(ComplianceProfile.subject_id)
                .join(DeletionRecord, of_profile)
                .where(of_type(kind), ComplianceProfile.subject_id.in_(chunk), record_open)
            )
            busy.update((kind, key) for key in session.scalars(requested.union(recorded)))
            busy.update(
                (kind, k) for k in held_subjects(session, chunk, now=now, subject_type=kind)
            )
    return busy


def hash_erased_keys(
    session: Session, datamap: DataMap, *, actor: str, now: datetime
) -> KeysHashed:
    """Keep the keys of ``plan_key_hashing``'s ready subjects only as their keyed hash.

    Profiles, requests, free-text ties and job runs, a chunk of subjects per commit with one
    audit event (counts only); a rerun after a crash finds the rest still as typed.
    """
    plan = plan_key_hashing(session, datamap.policy, now=now)
    if plan.refused is not None:
        log_event("subject_keys.not_hashed", logging.WARNING, reason=plan.refused)
        return KeysHashed(0, 0, plan.refused)
    if not plan.ready:
        return KeysHashed(0, plan.waiting)
    secret = key_secret(datamap.policy)
    assert secret is not None, "plan_key_hashing refuses without a key"
    hashed = 0
    for i in range(0, len(plan.ready), HASH_CHUNK):
        forms = {s: hashed_key(s[1], secret) for s in plan.ready[i : i + HASH_CHUNK]}
        done = sum(_hash_one(session, s, digest) for s, digest in forms.items())
        runs = _hash_job_runs(session, datamap, forms)
        if done or runs:  # a worker beside this one may have hashed them first
            record_event(
                session,
                actor=actor,
                action="subject_keys.hashed",
                target_type="compliance_profile",
                target_id=None,
                details={"subjects": done, "job_runs": runs},
            )
        session.commit()
        hashed += done
    return KeysHashed(hashed, plan.waiting)


def _hash_one(session: Session, subject: Subject, digest: str) -> int:
    """One subject's key becomes ``digest`` everywhere; 1 when it was still kept as typed.

    A subject erased before and found again since has two profiles (one hashed): the newer
    one's records, ledger rows and holds join the older, so one subject stays one profile.
    """
    kind, key = subject
    found = select(ComplianceProfile.id).where(of_type(kind))
    raw = session.scalar(found.where(ComplianceProfile.subject_id == key))
    older = session.scalar(found.where(ComplianceProfile.subject_id == digest))
    # Each statement names the key as typed, so a worker beside this one finds nothing left.
    profile = and_(ComplianceProfile.id == raw, ComplianceProfile.subject_id == key)
    if raw is not None and older is not None:
        for model in (DeletionRecord, DecisionLedger, LegalHold):
            session.execute(
                update(model)
                .where(model.compliance_profile_id == raw)
                .values(compliance_profile_id=older)
            )
        changed = rows_changed(session.execute(delete(ComplianceProfile).where(profile)))
    elif raw is not None:
        changed = rows_changed(
            session.execute(update(ComplianceProfile).where(profile).values(subject_id=digest))
        )
    else:
        changed = 0
    request = and_(DsarRequest.subject_type == kind, DsarRequest.subject_id == key)
    changed += rows_changed(
        session.execute(update(DsarRequest).where(request).values(subject_id=digest))
    )
    _hash_ties(session, subject, digest)
    return 1 if changed else 0


def _hash_ties(session: Session, subject: Subject, digest: str) -> None:
    """Free texts tied to the subject are tied to ``digest`` instead (once, if tied both ways)."""
    kind, key = subject
    mine = FreeTextSubject.subject_type == kind
    tied = select(FreeTextSubject.free_text_id).where(mine, FreeTextSubject.subject_id == digest)
    session.execute(
        delete(FreeTextSubject).where(
            mine, FreeTextSubject.subject_id == key, FreeTextSubject.free_text_id.in_(tied)
        )
    )
    session.execute(
        update(FreeTextSubject)
        .where(mine, FreeTextSubject.subject_id == key)
        .values(subject_id=digest)
    )


def _hash_job_runs(session: Session, datamap: DataMap, forms: dict[Subject, str]) -> int:
    """Job runs whose arguments or summary name one of ``forms``' subjects (the key as typed
    on the command line: " 007 " is key 7; the kind beside it, or the only one), or an
    export file named after its key, name its hash instead; how many runs changed."""
    named = or_(
        cast(JobRun.arguments, Text).like('%"subject_id"%'),
        cast(JobRun.summary, Text).like('%"subject_id"%'),
    )
    kinds = list(datamap.policy.subject_types)
    only = kinds[0] if len(kinds) == 1 else None
    changed = 0
    for run_id, arguments, summary in session.execute(
        select(JobRun.id, JobRun.arguments, JobRun.summary).where(named)
    ):
        new_arguments = _rename_keys(datamap, arguments, forms, only)
        new_summary = _rename_keys(datamap, summary, forms, only)
        if (new_arguments, new_summary) != (arguments, summary):
            session.execute(
                update(JobRun)
                .where(JobRun.id == run_id)
                .values(arguments=new_arguments, summary=new_summary)
            )
            changed += 1
    return changed


def _rename_keys(datamap: DataMap, value: Any, forms: dict[Subject, str], kind: str | None) -> Any:
    """``value`` with the keys of ``forms``' subjects hashed; ``kind`` is the kind of subject
    a key found here names (a dict's own ``subject_type`` wins; None: unknown, left alone)."""
    if isinstance(value, dict):
        kind = value.get("subject_type") or kind
        return {
            k: _stored_key(datamap, v, forms, kind)
            if k in _KEY_FIELDS
            else _rename_keys(datamap, v, forms, kind)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_rename_keys(datamap, v, forms, kind) for v in value]
    if isinstance(value, str) and "subject-" in value:  # an export-user-data file's path
        for (of_kind, key), digest in forms.items():
            if of_kind == kind:
                value = value.replace(_export_stem(key), _export_stem(digest))
    return value


def _export_stem(subject_id: str) -> str:
    """The start of every export-user-data file name of this subject (storage.folder)."""
    return f"subject-{SAFE_NAME.sub('_', subject_id)}-"


def _stored_key(datamap: DataMap, value: Any, forms: dict[Subject, str], kind: str | None) -> Any:
    if value is None or isinstance(value, dict | list) or kind is None:
        return value
    try:
        key = datamap.subject_key(value, kind)
    except ComplianceError:
        return value
    return forms.get((kind, key), value)
