"""DSAR processing: workers claim approved requests, export or schedule erasure, settle.

An access request gets a task per system (compliance.systems.tasks): webhook systems are
asked for their data, manual ones wait for a person's upload, and the export is written,
one folder per system, once every one of them is done. An erasure request waits for its
deletion record in the ``dsar_erasure`` bucket to be applied by apply-deletions, which
itself waits for every system's task.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, exists, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from compliance.deletion.apply import one_line
from compliance.deletion.holds import HoldRef, awaiting_access_export, held_profiles
from compliance.deletion.records import add_records
from compliance.dsar.deadlines import effective_due_at
from compliance.dsar.exports import SystemFile, build_access_export
from compliance.dsar.forget import forget_subject
from compliance.dsar.requests import audit_request
from compliance.errors import ComplianceError, InvalidInput
from compliance.logs import log_event
from compliance.policy.datamap import DataMap
from compliance.policy.loader import DSAR_ERASURE_BUCKET, Policy
from compliance.store.models import (
    AuditEvent,
    ComplianceProfile,
    DeletionRecord,
    DsarRequest,
    ErasureTask,
    utcnow,
)
from compliance.store.queries import dsar_claimable, dsar_in, record_open, record_state
from compliance.store.sql import rows_changed
from compliance.store.states import DsarKind, DsarStatus, RecordState, TaskStatus
from compliance.systems import tasks as system_tasks

CLAIM_LEASE = timedelta(minutes=30)  # far longer than one export or erasure takes
# A request waiting for its systems is looked at again by one worker at a time, this far apart.
SETTLE_LEASE = timedelta(minutes=1)
# A failed attempt waits 5, then 10, then 20 minutes...: a database restart or a full disk
# gets time to pass before the request shows as failed ([dsar] max_attempts in all).
BACKOFF_BASE = timedelta(minutes=5)


@dataclass
class ProcessResult:
    claimed: int = 0
    exported: int = 0
    erasure_scheduled: int = 0
    completed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    waiting: list[str] = field(default_factory=list)
    retrying: dict[str, str] = field(default_factory=dict)  # reference -> when, after which error
    would_process: list[str] = field(default_factory=list)
    executed: bool = False


def claim_requests(
    session: Session,
    *,
    limit: int = 20,
    now: datetime | None = None,
    lease: timedelta = CLAIM_LEASE,
) -> list[int]:
    """Mark up to ``limit`` claimable requests as processing and commit; return their ids.

    On PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets workers run side by side; the UPDATE's
    repeated condition keeps the claim exclusive on SQLite as well.
    """
    now = now or utcnow()
    query = (
        select(DsarRequest.id)
        .where(dsar_claimable(now, lease))
        .order_by(DsarRequest.requested_at, DsarRequest.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list(session.scalars(query))
    if not ids:
        session.rollback()
        return []
    claimed = list(
        session.scalars(
            update(DsarRequest)
            .where(DsarRequest.id.in_(ids), dsar_claimable(now, lease))
            .values(status=DsarStatus.PROCESSING, processing_started_at=now, last_error=None)
            .returning(DsarRequest.id)
        )
    )
    session.commit()
    return sorted(claimed)


def fail_request(session: Session, request: DsarRequest, message: str, actor: str) -> None:
    """Mark the request failed with the reason shown to staff; the worker and the desk share it."""
    request.status = DsarStatus.FAILED
    request.last_error = message[:1000]
    audit_request(
        session, request, "dsar.failed", actor, {"kind": request.kind, "error": request.last_error}
    )


def backoff(attempt: int, base: timedelta = BACKOFF_BASE) -> timedelta:
    """How long after its ``attempt``-th failure a request is tried again: base, 2x, 4x..."""
    return base * (2 ** (attempt - 1))


def _attempt_failed(
    session: Session,
    request: DsarRequest,
    message: str,
    actor: str,
    *,
    max_attempts: int,
    now: datetime,
) -> datetime | None:
    """Count the failure; put the request back for later, or fail it after the last attempt."""
    request.attempts = (request.attempts or 0) + 1
    if request.attempts >= max_attempts:
        fail_request(session, request, message, actor)
        return None
    retry_at = now + backoff(request.attempts)
    request.status = DsarStatus.APPROVED
    request.next_attempt_at = retry_at
    request.last_error = message[:1000]
    audit_request(
        session,
        request,
        "dsar.attempt_failed",
        actor,
        {
            "kind": request.kind,
            "attempt": request.attempts,
            "max_attempts": max_attempts,
            "next_attempt_at": retry_at.isoformat(),
            "error": request.last_error,
        },
    )
    return retry_at


def complete_request(session: Session, request: DsarRequest, actor: str, now: datetime) -> None:
    """Mark the request completed, audited with whether it met its deadline and its evidence."""
    request.status = DsarStatus.COMPLETED
    request.completed_at = now
    request.last_error = None
    details: dict[str, Any] = {"kind": request.kind, "on_time": now <= effective_due_at(request)}
    if request.kind == DsarKind.ACCESS:
        details.update(bytes=request.export_bytes, sha256=request.export_sha256)
    else:
        details["deletion_record_id"] = request.deletion_record_id
    audit_request(session, request, "dsar.completed", actor, details)


_WAITING_KINDS = ("webhook", "manual")


def _process_access(
    session: Session, datamap: DataMap, request: DsarRequest, actor: str, now: datetime
) -> bool:
    """Open the request's tasks, ask the other systems, and export once all are done.

    Returns whether the request completed (False: it waits for a webhook or a person).
    """
    policy = datamap.policy
    subject = {"id": request.subject_id, "email": request.subject_email}
    system_tasks.ensure_request_tasks(session, policy, request, subject=subject, now=now)
    if any(s.kind in _WAITING_KINDS for s in system_tasks.access_task_specs(policy)):
        session.commit()  # the tasks' idempotency keys exist before any request leaves
        system_tasks.run_webhook_tasks(
            session, policy, actor=actor, now=now, request_ids=[request.id],
            export_dir=policy.export_dir,
        )  # fmt: skip
        if not system_tasks.request_tasks_finished(session, request.id, kinds=_WAITING_KINDS):
            return False
    parts = [
        SystemFile(task.system, Path(task.file_path).name.split("-", 1)[-1],
                   Path(task.file_path).read_bytes())
        for task in system_tasks.tasks_of_request(session, request)
        if task.file_path
    ]  # fmt: skip
    export = build_access_export(
        datamap,
        request.subject_id,
        reference=request.reference,
        directory=policy.export_dir,
        now=now,
        parts=parts,
        request=request,
    )
    request.export_path = str(export.path)
    request.export_bytes = export.bytes
    request.export_sha256 = export.sha256
    finished = utcnow()
    session.execute(
        update(ErasureTask)
        .where(
            ErasureTask.dsar_request_id == request.id,
            ErasureTask.system_kind == "sql",
            ErasureTask.status.not_in(system_tasks.FINISHED),
        )
        .values(status=TaskStatus.DONE, done_at=finished, attempts=ErasureTask.attempts + 1,
                updated_at=finished)
    )  # fmt: skip
    complete_request(session, request, actor, finished)
    return True


def _access_into(
    result: ProcessResult,
    session: Session,
    datamap: DataMap,
    request: DsarRequest,
    actor: str,
    now: datetime,
) -> None:
    """Work on an access request and count it exported or waiting, for claim and settle alike."""
    if _process_access(session, datamap, request, actor, now):
        result.exported += 1
        result.completed.append(request.reference)
    else:
        result.waiting.append(request.reference)


def _error_message(exc: Exception) -> str:
    """A domain error is shown as said; anything else on one line, as the request's note."""
    return str(exc) if isinstance(exc, ComplianceError) else one_line(exc)


def _settle_access(
    session: Session, datamap: DataMap, result: ProcessResult, actor: str, now: datetime
) -> None:
    """Access requests waiting for their systems: ask again, export those now complete."""
    waiting = and_(
        DsarRequest.kind == "access",
        DsarRequest.status == DsarStatus.PROCESSING,
        DsarRequest.export_path.is_(None),
        exists().where(ErasureTask.dsar_request_id == DsarRequest.id),
        # Not while the worker that claimed (or last looked at) it may still be at work.
        DsarRequest.processing_started_at <= now - SETTLE_LEASE,
    )
    ids = list(session.scalars(select(DsarRequest.id).where(waiting).order_by(DsarRequest.id)))
    session.rollback()
    seen = set(result.waiting)
    for request_id in ids:
        # Take it for this worker: a second worker's UPDATE finds the condition false.
        taken = session.execute(
            update(DsarRequest)
            .where(DsarRequest.id == request_id, waiting)
            .values(processing_started_at=now)
        )
        session.commit()
        request = session.get(DsarRequest, request_id)
        if rows_changed(taken) != 1 or request is None or request.reference in seen:
            continue  # another worker has it, or this run's claim just asked
        try:
            _access_into(result, session, datamap, request, actor, now)
            session.commit()
        except (ComplianceError, SQLAlchemyError, OSError) as exc:
            session.rollback()
            message = _error_message(exc)
            fail_request(session, request, message, actor)
            session.commit()
            result.failed[request.reference] = message


def _on_hold(session: Session, subject_id: str, now: datetime) -> HoldRef | None:
    """A hold in force on the subject, if any (the check every erasing path shares)."""
    profile_id = session.scalar(
        select(ComplianceProfile.id).where(ComplianceProfile.subject_id == subject_id)
    )
    if profile_id is None:
        return None
    return held_profiles(session, [profile_id], now=now).get(profile_id)


def _wait(
    session: Session, request: DsarRequest, note: str, actor: str, details: dict[str, Any]
) -> None:
    """Leave the request claimed with a visible note; audited once per request and reason."""
    action = "dsar.erasure_waits"
    told = session.scalar(
        select(func.count()).where(
            AuditEvent.action == action, AuditEvent.target_id == request.reference
        )
    )
    if not told:  # once per request, not on every run that looks again
        audit_request(session, request, action, actor, details)
    request.last_error = note


def _process_erasure(
    session: Session, policy: Policy, request: DsarRequest, actor: str, now: datetime
) -> bool:
    """Schedule the erasure; False when it must wait (a legal hold, an open access request).

    A waiting request stays claimed with a note saying why; once its lease runs out the next
    run looks again, so lifting the hold or building the export lets it through by itself.
    """
    hold = _on_hold(session, request.subject_id, now)
    if hold is not None:
        note = f"{hold}: the erasure waits until the hold is lifted"
        _wait(session, request, note, actor, {"hold_id": hold.id, "hold_kind": hold.kind})
        return False
    if awaiting_access_export(session, [request.subject_id]):
        note = "an access request of this subject is open: the erasure waits for its export"
        _wait(session, request, note, actor, {"waits_for": "access export"})
        return False
    accepted = None if policy.dsar.erasure_review else True
    add_records(
        session,
        DSAR_ERASURE_BUCKET,
        [request.subject_id],
        actor=actor,
        scheduled_at=now,
        now=now,
        accepted=accepted,
    )
    # The open record, new or already there, is the one whose application completes us.
    request.deletion_record_id = session.scalar(
        select(DeletionRecord.id)
        .join(ComplianceProfile, ComplianceProfile.id == DeletionRecord.compliance_profile_id)
        .where(
            ComplianceProfile.subject_id == request.subject_id,
            DeletionRecord.bucket == DSAR_ERASURE_BUCKET,
            record_open,
        )
    )
    audit_request(
        session,
        request,
        "dsar.erasure_scheduled",
        actor,
        {"deletion_record_id": request.deletion_record_id, "review": accepted is None},
    )
    return True


def _state_of(record: DeletionRecord) -> RecordState:
    return record_state(
        batch_id=record.deletion_batch_id,
        accepted=record.accepted_for_deletion,
        applied_at=record.deletion_applied_at,
        error=record.deletion_error,
    )


def _settle_erasures(
    session: Session, policy: Policy, result: ProcessResult, actor: str, now: datetime
) -> None:
    """Erasure requests complete once their deletion record is applied (by apply-deletions)."""
    rows = session.execute(
        select(DsarRequest, DeletionRecord)
        .outerjoin(DeletionRecord, DeletionRecord.id == DsarRequest.deletion_record_id)
        .where(
            DsarRequest.kind == DsarKind.ERASURE,
            dsar_in(DsarStatus.PROCESSING),
            DsarRequest.deletion_record_id.is_not(None),
        )
        .order_by(DsarRequest.id)
    ).all()
    for request, record in rows:
        state = None if record is None else _state_of(record)
        if record is None:
            fail_request(session, request, "its deletion record no longer exists", actor)
            result.failed[request.reference] = request.last_error or ""
        elif state == RecordState.APPLIED:
            complete_request(session, request, actor, now)
            forget_subject(
                session, policy, request.subject_id, actor=actor, reference=request.reference
            )
            result.completed.append(request.reference)
        elif state == RecordState.EXCLUDED:
            note = record.review_note or "its deletion batch was rejected"
            fail_request(session, request, f"erasure not accepted in review: {note}", actor)
            result.failed[request.reference] = request.last_error or ""
        else:
            # Shown on the request: e.g. "on legal hold", refused by apply-deletions.
            request.last_error = record.deletion_error
            result.waiting.append(request.reference)
    session.commit()


def process_dsar_requests(
    session: Session,
    datamap: DataMap,
    *,
    actor: str,
    execute: bool,
    limit: int = 20,
    now: datetime | None = None,
) -> ProcessResult:
    """Claim approved requests and do their work; then complete erasures that were applied.

    One request's failure is stored on it and does not stop the others. It is tried again
    with exponential backoff (``backoff``) until ``[dsar] max_attempts`` attempts failed;
    only then is it ``failed``, and ``retry_dsar`` puts it back.
    """
    if limit < 1:
        raise InvalidInput(f"{{field}} must be at least 1, got {limit}", field="limit")
    result = ProcessResult(executed=execute)
    if not execute:
        result.would_process = plan_dsar_processing(session, now=now)
        return result
    while True:
        ids = claim_requests(session, limit=limit, now=now)
        if not ids:
            break
        result.claimed += len(ids)
        for request in session.scalars(
            select(DsarRequest).where(DsarRequest.id.in_(ids)).order_by(DsarRequest.id)
        ).all():
            _process_claimed(session, datamap, request, result, actor, now)
    _settle_access(session, datamap, result, actor, now or utcnow())
    _settle_erasures(session, datamap.policy, result, actor, now or utcnow())
    return result


def plan_dsar_processing(session: Session, *, now: datetime | None = None) -> list[str]:
    """The references a run would claim now, oldest first: what the dry run shows."""
    references = list(
        session.scalars(
            select(DsarRequest.reference)
            .where(dsar_claimable(now or utcnow(), CLAIM_LEASE))
            .order_by(DsarRequest.requested_at, DsarRequest.id)
        )
    )
    session.rollback()
    return references


def _process_claimed(
    session: Session,
    datamap: DataMap,
    request: DsarRequest,
    result: ProcessResult,
    actor: str,
    now: datetime | None,
) -> None:
    """Do one claimed request's work; its failure is stored on it and stops no other."""
    started = now or utcnow()
    try:
        if request.kind == DsarKind.ACCESS:
            _access_into(result, session, datamap, request, actor, started)
        elif _process_erasure(session, datamap.policy, request, actor, started):
            result.erasure_scheduled += 1
        else:
            result.waiting.append(request.reference)
        session.commit()
    except (ComplianceError, SQLAlchemyError, OSError) as exc:
        session.rollback()
        message = _error_message(exc)
        _attempt_failed_and_report(session, datamap.policy, request, result, message, actor, now)


def _attempt_failed_and_report(
    session: Session,
    policy: Policy,
    request: DsarRequest,
    result: ProcessResult,
    message: str,
    actor: str,
    now: datetime | None,
) -> None:
    """Count the failed attempt (committed) and say whether the request fails or retries."""
    retry_at = _attempt_failed(
        session, request, message, actor, max_attempts=policy.dsar.max_attempts,
        now=now or utcnow(),
    )  # fmt: skip
    session.commit()
    if retry_at is None:
        result.failed[request.reference] = message
        log_event("dsar.failed", reference=request.reference, error=message)
    else:
        result.retrying[request.reference] = f"{retry_at.isoformat()}: {message}"
        log_event(
            "dsar.attempt_failed",
            reference=request.reference,
            attempt=request.attempts,
            next_attempt_at=retry_at.isoformat(),
        )
