"""Restriction of processing (GDPR Art. 18): a hold on the subject for as long as it lasts.

Once a restriction request is approved, process-dsar-requests places a hold of kind
``restriction`` (``legal_holds.kind``): ``deletion.holds.holds_in_force`` reads every kind,
so apply-deletions, retention cleanup, erasure requests and replays leave the subject's data
alone exactly as under a legal hold. Webhook and manual systems are told (its start and
end); the request is completed once each confirmed. Lifting it is an officer's decision
with a reason, and the subject is told before it is lifted (Art. 18(3),
``compliance.dsar.rights.lift_restriction``). A subject already erased has nothing left to
restrict: such a request is refused at intake.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from compliance.audit.chain import record_event
from compliance.audit.subject_keys import key_forms, key_secret
from compliance.deletion.profiles import ensure_profiles
from compliance.errors import InvalidInput
from compliance.policy.model import Policy
from compliance.store.models import (
    ComplianceProfile,
    DecisionLedger,
    DeletionRecord,
    DsarRequest,
    LegalHold,
)
from compliance.store.queries import of_type, record_in
from compliance.store.states import DsarKind, DsarStatus, HoldKind, LedgerDecision, RecordState
from compliance.systems.payloads import restriction_of


def erased_by(session: Session, policy: Policy, subject_type: str, subject_id: str) -> str | None:
    """What erased the subject's own row (their kind's subjects table), or None if nothing
    did: a completed erasure request, or an applied deletion in a bucket that erases it.
    Once erased, the subject's key is kept only as its keyed hash: either form is theirs."""
    forms = list(key_forms([subject_id], key_secret(policy)))
    request = session.scalar(
        select(DsarRequest.reference).where(
            DsarRequest.subject_type == subject_type,
            DsarRequest.subject_id.in_(forms),
            DsarRequest.kind == DsarKind.ERASURE,
            DsarRequest.status == DsarStatus.COMPLETED,
        )
    )
    if request is not None:
        return f"erasure request {request}"
    buckets = [
        *(b for b in policy.subject_erasing_buckets if policy.buckets[b].subject == subject_type),
        policy.erasure_bucket_name(subject_type),
    ]
    profile = select(ComplianceProfile.id).where(
        of_type(subject_type), ComplianceProfile.subject_id.in_(forms)
    )
    bucket = session.scalar(
        select(DeletionRecord.bucket).where(
            DeletionRecord.compliance_profile_id.in_(profile),
            DeletionRecord.bucket.in_(buckets),
            record_in(RecordState.APPLIED),
        )
    ) or session.scalar(
        select(DecisionLedger.bucket).where(
            DecisionLedger.compliance_profile_id.in_(profile),
            DecisionLedger.bucket.in_(buckets),
            DecisionLedger.decision == LedgerDecision.ERASED,
        )
    )
    return None if bucket is None else f"bucket {bucket}"


def refuse_if_erased(
    session: Session, policy: Policy, kind: str, subject_type: str, subject_id: str
) -> None:
    """A restriction of a subject already erased is refused: nothing is left to restrict."""
    if kind != DsarKind.RESTRICTION:
        return
    by = erased_by(session, policy, subject_type, subject_id)
    if by is not None:
        raise InvalidInput(
            f"subject {subject_id} was already erased ({by}): there is nothing left to restrict",
            field="subject_id",
        )


def place_restriction(
    session: Session, request: DsarRequest, *, actor: str, now: datetime
) -> LegalHold:
    """The request's restriction, placed once (a rerun finds it), under its approver's name;
    audited on the request by hold and profile id. In the caller's transaction."""
    found = restriction_of(session, request.id)
    if found is not None:
        return found
    profiles, _ = ensure_profiles(session, request.subject_type, [request.subject_id], now)
    hold = LegalHold(
        kind=HoldKind.RESTRICTION,
        compliance_profile_id=profiles[request.subject_id],
        reason=f"restriction of processing asked in {request.reference} (GDPR Art. 18)",
        placed_by=request.reviewed_by or actor,
        placed_at=now,
        dsar_request_id=request.id,
    )
    session.add(hold)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="dsar.restriction_placed",
        target_type="dsar_request",
        target_id=request.reference,
        details={"hold_id": hold.id, "profile_id": hold.compliance_profile_id},
    )
    return hold
