"""Erasure requests in the worker: an approved one accepts its deletion record under the
approval (unless a legal hold or an open access request holds it back, noted on it), and
completes once apply-deletions applied that record."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from compliance.deletion.holds import awaiting_access_export, hold_on
from compliance.deletion.records import add_records
from compliance.dsar.forget import forget_subject
from compliance.dsar.requests import audit_request, complete_request, fail_request
from compliance.policy.model import Policy
from compliance.store.models import (
    AuditEvent,
    ComplianceProfile,
    DeletionRecord,
    DsarRequest,
)
from compliance.store.queries import (
    dsar_in,
    of_type,
    record_open,
    record_state,
)
from compliance.store.states import (
    DsarKind,
    DsarStatus,
    RecordState,
)

if TYPE_CHECKING:
    from compliance.dsar.processing import ProcessResult


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


def _must_wait(session: Session, request: DsarRequest, actor: str, now: datetime) -> bool:
    """Whether a legal hold or an open access request holds the erasure back (noted on it)."""
    hold = hold_on(session, request.subject_type, request.subject_id, now=now)
    if hold is not None:
        note = f"{hold}: the erasure waits until the hold is lifted"
        _wait(session, request, note, actor, {"hold_id": hold.id, "hold_kind": hold.kind})
        return True
    if awaiting_access_export(session, [request.subject_id], subject_type=request.subject_type):
        note = (
            "an access request of this subject is open: "
            "the erasure waits for its export (built and sent)"
        )
        _wait(session, request, note, actor, {"waits_for": "access export"})
        return True
    return False


def process_erasure(
    session: Session, policy: Policy, request: DsarRequest, actor: str, now: datetime
) -> bool:
    """Accept the erasure's record under the approval; False when it must wait (a legal hold,
    an open access request).

    A waiting request stays claimed with a note saying why; once its lease runs out the next
    run looks again, so lifting the hold or building the export lets it through by itself.
    """
    if _must_wait(session, request, actor, now):
        return False
    bucket = policy.erasure_bucket_name(request.subject_type)
    add_records(
        session,
        bucket,
        [request.subject_id],
        subject_type=request.subject_type,
        actor=actor,
        scheduled_at=now,
        now=now,
        accepted=True,
    )
    # The open record, new or already there, is the one whose application completes us.
    request.deletion_record_id = session.scalar(
        select(DeletionRecord.id)
        .join(ComplianceProfile, ComplianceProfile.id == DeletionRecord.compliance_profile_id)
        .where(
            of_type(request.subject_type),
            ComplianceProfile.subject_id == request.subject_id,
            DeletionRecord.bucket == bucket,
            record_open,
        )
    )
    # The approval was the review: the record is accepted under it and the plan it accepted
    # (none without [dsar] erasure_review), whatever an older record said.
    session.execute(
        update(DeletionRecord)
        .where(DeletionRecord.id == request.deletion_record_id)
        .values(
            accepted_for_deletion=True,
            accepted_plan_hash=request.accepted_plan_hash,
            is_manually_reviewed=True,
            updated_at=now,
        )
    )
    audit_request(
        session,
        request,
        "dsar.erasure_scheduled",
        actor,
        {
            "deletion_record_id": request.deletion_record_id,
            "accepted_by": request.reviewed_by,
            "plan_hash": request.accepted_plan_hash,
        },
    )
    return True


def _state_of(record: DeletionRecord) -> RecordState:
    return record_state(
        batch_id=record.deletion_batch_id,
        accepted=record.accepted_for_deletion,
        applied_at=record.deletion_applied_at,
        error=record.deletion_error,
    )


class _Outcome(NamedTuple):
    """What settling an erasure request does: complete, fail (with why), or keep waiting."""

    status: DsarStatus
    note: str | None


def erasure_outcome(record: DeletionRecord | None) -> _Outcome:
    """The one reading of an erasure request's deletion record, for the run and its dry run."""
    if record is None:
        return _Outcome(DsarStatus.FAILED, "its deletion record no longer exists")
    state = _state_of(record)
    if state == RecordState.APPLIED:
        return _Outcome(DsarStatus.COMPLETED, None)
    if state == RecordState.EXCLUDED:
        note = record.review_note or "its deletion batch was rejected"
        return _Outcome(DsarStatus.FAILED, f"erasure not accepted in review: {note}")
    # Shown on the request: e.g. "on legal hold", refused by apply-deletions.
    return _Outcome(DsarStatus.PROCESSING, record.deletion_error)


def scheduled_erasures(session: Session) -> list[tuple[DsarRequest, DeletionRecord | None]]:
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
    return [(request, record) for request, record in rows]


def settle_erasures(
    session: Session, policy: Policy, result: ProcessResult, actor: str, now: datetime
) -> None:
    """Erasure requests complete once their deletion record is applied (by apply-deletions)."""
    for request, record in scheduled_erasures(session):
        outcome = erasure_outcome(record)
        if outcome.status == DsarStatus.FAILED:
            fail_request(session, request, outcome.note or "", actor)
            result.failed[request.reference] = request.last_error or ""
        elif outcome.status == DsarStatus.COMPLETED:
            complete_request(session, request, actor, now)
            forget_subject(session, policy, request, actor=actor)
            result.completed.append(request.reference)
        else:
            request.last_error = outcome.note
            result.waiting.append(request.reference)
    session.commit()
