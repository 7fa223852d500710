"""Purging the compliance bookkeeping once it is no longer needed.

Applied records and records a reviewer decided to keep are removed after the bucket's
``purge_after_days``; then batches left empty, then profiles with no record at all. The
audit trail keeps the evidence (counts, ids, reviewers); the bookkeeping does not have to.
Before anything goes, it is folded into the permanent decision ledger and the weekly
aggregates (compliance.deletion.ledger) in the same transaction, so rejections stay
remembered, erasures can be replayed, and Progress figures never shrink. Profiles that the
ledger or a legal hold names are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, exists, false, func, or_, select
from sqlalchemy.orm import Session

from compliance.audit.chain import record_event
from compliance.deletion.ledger import fold_batches, fold_records
from compliance.policy.model import Policy
from compliance.store.models import (
    ComplianceProfile,
    DecisionLedger,
    DeletionBatch,
    DeletionRecord,
    LegalHold,
    Suppression,
    utcnow,
)
from compliance.store.queries import batch_decided, record_in, record_open
from compliance.store.sql import rows_changed
from compliance.store.states import RecordState

_CHUNK = 10_000


@dataclass(frozen=True)
class PurgeResult:
    bucket: str
    records: int
    batches: int
    profiles: int
    executed: bool


def _records_done(bucket: str, cutoff: datetime):
    reviewed_before = exists().where(
        DeletionBatch.id == DeletionRecord.deletion_batch_id,
        batch_decided,
        DeletionBatch.reviewed_at <= cutoff,
    )
    return and_(
        DeletionRecord.bucket == bucket,
        or_(
            DeletionRecord.deletion_applied_at <= cutoff,
            and_(record_open, record_in(RecordState.EXCLUDED), reviewed_before),
        ),
    )


_orphan_profiles = and_(
    ~exists().where(DeletionRecord.compliance_profile_id == ComplianceProfile.id),
    ~exists().where(DecisionLedger.compliance_profile_id == ComplianceProfile.id),
    ~exists().where(LegalHold.compliance_profile_id == ComplianceProfile.id),
    # A suppression names the subject by profile for good, after erasure too.
    ~exists().where(Suppression.compliance_profile_id == ComplianceProfile.id),
)


@dataclass(frozen=True)
class PurgePlan:
    """What a purge removes: the bucket's finished bookkeeping older than ``cutoff``."""

    bucket: str
    cutoff: datetime


def _batches_left_empty(plan: PurgePlan) -> ColumnElement[bool]:
    """Decided batches of the bucket holding no record the purge keeps: the dry run counts
    them while their records still exist, the run removes them once the records are gone."""
    kept = and_(
        DeletionRecord.deletion_batch_id == DeletionBatch.id,
        # NULL-safe: a record the predicate cannot judge is kept, and so is its batch.
        ~func.coalesce(_records_done(plan.bucket, plan.cutoff), false()),
    )
    return and_(DeletionBatch.bucket == plan.bucket, batch_decided, ~exists().where(kept))


def plan_purge(policy: Policy, bucket_name: str, *, now: datetime | None = None) -> PurgePlan:
    """Fix the cutoff once, so the dry run counts what the run would remove."""
    bucket = policy.bucket(bucket_name)
    return PurgePlan(bucket.name, (now or utcnow()) - timedelta(days=bucket.purge_after_days))


def purge_compliance_data(
    session: Session,
    policy: Policy,
    bucket_name: str,
    *,
    actor: str,
    execute: bool,
    now: datetime | None = None,
) -> PurgeResult:
    """Remove the bucket's finished bookkeeping (dry run: count what would go)."""
    plan = plan_purge(policy, bucket_name, now=now)
    if not execute:
        return count_purge(session, plan)
    return carry_out_purge(session, plan, actor=actor)


def count_purge(session: Session, plan: PurgePlan) -> PurgeResult:
    """The dry run: records, batches and profiles the plan removes, changing nothing."""
    done = _records_done(plan.bucket, plan.cutoff)
    records = session.scalar(select(func.count()).where(done)) or 0
    batches = session.scalar(select(func.count()).where(_batches_left_empty(plan))) or 0
    # A profile whose records go is kept anyway: the ledger names it from now on.
    profiles = session.scalar(select(func.count()).where(_orphan_profiles)) or 0
    session.rollback()
    return PurgeResult(plan.bucket, records, batches, profiles, False)


def carry_out_purge(session: Session, plan: PurgePlan, *, actor: str) -> PurgeResult:
    """Records chunk by chunk, each chunk folded and committed; then what they leave empty."""
    records = 0
    while True:
        ids = list(
            session.scalars(
                select(DeletionRecord.id)
                .where(_records_done(plan.bucket, plan.cutoff))
                .limit(_CHUNK)
            )
        )
        if not ids:
            break
        fold_records(session, ids, now=utcnow())
        removed = rows_changed(
            session.execute(delete(DeletionRecord).where(DeletionRecord.id.in_(ids)))
        )
        _audit(session, actor, plan.bucket, records=removed)
        session.commit()
        records += removed
    empty = list(session.scalars(select(DeletionBatch.id).where(_batches_left_empty(plan))))
    fold_batches(session, empty)
    batches = rows_changed(
        session.execute(delete(DeletionBatch).where(DeletionBatch.id.in_(empty)))
    )
    profiles = rows_changed(session.execute(delete(ComplianceProfile).where(_orphan_profiles)))
    _audit(session, actor, plan.bucket, batches=batches, profiles=profiles)
    session.commit()
    return PurgeResult(plan.bucket, records, batches, profiles, True)


def _audit(session: Session, actor: str, bucket: str, **removed: int) -> None:
    """One event per commit, so a purge killed halfway still has evidence of what it removed."""
    record_event(
        session,
        actor=actor,
        action="compliance_data.purged",
        target_type="bucket",
        target_id=bucket,
        details=removed,
    )
