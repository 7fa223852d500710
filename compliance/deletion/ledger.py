"""The permanent side of the bookkeeping: the decision ledger and the weekly aggregates.

Purge removes records and batches once they are done; before it does, it folds them in
here, in the same transaction. The ledger remembers each decision about a subject in a
bucket (no email, no name: the profile id), so a rejection holds the subject back for the
bucket's cool-off and an erasure can be replayed after a backup restore. The aggregates
keep every Progress figure the same before and after purge.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, insert, literal, or_, select
from sqlalchemy.orm import Session

from compliance.audit.subject_keys import key_forms
from compliance.store.models import (
    ComplianceProfile,
    DecisionLedger,
    DeletionAggregate,
    DeletionBatch,
    DeletionRecord,
    DsarRequest,
)
from compliance.store.queries import batch_in, record_in
from compliance.store.sql import dialect_insert, rows_changed
from compliance.store.states import BatchStatus, LedgerDecision, RecordState
from compliance.store.tallies import DeletionTally, tally_sums
from compliance.store.types import UTCDateTime

_KEPT = (LedgerDecision.REJECTED, LedgerDecision.EXCLUDED)


def week_of(session: Session, moment: Any) -> ColumnElement[Any]:
    """The Monday (UTC) of ``moment``'s week, in SQL; weeks are how Progress groups figures."""
    if session.get_bind().dialect.name == "postgresql":
        return func.date_trunc("week", moment)
    return func.date(moment, "weekday 0", "-6 days")


def tally_week(session: Session) -> ColumnElement[Any]:
    """The week a deletion record counts in, as the tallies' triggers (migration 0009) put it.

    That of what last happened to it: applied, last changed when excluded or failed, else
    found. Purge folds a record into this same week, so Progress's weeks read the same after.
    """
    r = DeletionRecord
    changed = or_(record_in(RecordState.EXCLUDED), record_in(RecordState.FAILED))
    moment = case(
        (record_in(RecordState.APPLIED), r.deletion_applied_at),
        (changed, r.updated_at),
        else_=r.created_at,
    )
    return week_of(session, moment)


def as_date(value: Any) -> date:
    """A week from either database (timestamp on PostgreSQL, text on SQLite) as a date."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


# ---------------------------------------------------------------- folding (by purge)


def fold_records(session: Session, record_ids: Sequence[int], *, now: datetime) -> int:
    """Write the ledger entries and aggregates of records about to be purged; return entries.

    Runs in the caller's transaction, which then deletes the records: both or neither.
    """
    if not record_ids:
        return 0
    r, b = DeletionRecord, DeletionBatch
    decision = case(
        (record_in(RecordState.APPLIED), literal(LedgerDecision.ERASED.value)),
        (batch_in(BatchStatus.REJECTED), literal(LedgerDecision.REJECTED.value)),
        else_=literal(LedgerDecision.EXCLUDED.value),
    )
    # A record of an erasure request has no batch: the request's approval was its review.
    approval = (
        select(DsarRequest.reviewed_by, DsarRequest.reviewed_at)
        .where(DsarRequest.deletion_record_id == r.id)
        .order_by(DsarRequest.id.desc())
        .limit(1)
    )
    approver = approval.with_only_columns(DsarRequest.reviewed_by).scalar_subquery()
    approved_at = approval.with_only_columns(DsarRequest.reviewed_at).scalar_subquery()
    source = (
        select(
            r.compliance_profile_id,
            r.bucket,
            decision,
            func.coalesce(b.reviewed_by, approver),
            func.coalesce(b.reviewed_at, approved_at, r.deletion_applied_at),
            r.deletion_applied_at,
            r.review_note,
            func.coalesce(r.applied_plan_hash, b.accepted_plan_hash, r.accepted_plan_hash),
            r.id,
            literal(now, UTCDateTime()),
        )
        .outerjoin(b, b.id == r.deletion_batch_id)
        .where(r.id.in_(list(record_ids)))
    )
    written = rows_changed(session.execute(
        insert(DecisionLedger).from_select(
            [
                "compliance_profile_id", "bucket", "decision", "reviewer", "decided_at",
                "applied_at", "note", "plan_hash", "deletion_record_id", "recorded_at",
            ],
            source,
        )
    ))  # fmt: skip
    # Each record goes into the week the tallies counted it in, so no week's figure moves.
    applied = record_in(RecordState.APPLIED)
    week = tally_week(session)
    counts: dict[tuple[str, date], dict[str, int]] = {}
    for bucket, when, was_applied, n in session.execute(
        select(r.bucket, week, applied, func.count())
        .where(r.id.in_(list(record_ids)))
        .group_by(r.bucket, week, applied)
    ):
        column = "records_erased" if was_applied else "records_kept"
        counts.setdefault((bucket, as_date(when)), {})[column] = n
    _add_to_aggregates(session, counts)
    return written


def fold_batches(session: Session, batch_ids: Sequence[int]) -> None:
    """Count reviewed batches about to be purged into the aggregates (week of their review)."""
    if not batch_ids:
        return
    counts: dict[tuple[str, date], dict[str, int]] = {}
    week = week_of(session, DeletionBatch.reviewed_at)
    for bucket, when, status, n in session.execute(
        select(DeletionBatch.bucket, week, DeletionBatch.reviewed_status, func.count())
        .where(DeletionBatch.id.in_(list(batch_ids)), DeletionBatch.reviewed_at.is_not(None))
        .group_by(DeletionBatch.bucket, week, DeletionBatch.reviewed_status)
    ):
        if status in (BatchStatus.ACCEPTED, BatchStatus.REJECTED):
            counts.setdefault((bucket, as_date(when)), {})[f"batches_{status}"] = n
    _add_to_aggregates(session, counts)


_COUNTERS = ("records_erased", "records_kept", "batches_accepted", "batches_rejected")


def _add_to_aggregates(session: Session, counts: dict[tuple[str, date], dict[str, int]]) -> None:
    if not counts:
        return
    rows = [
        {"bucket": bucket, "week": week, **{c: values.get(c, 0) for c in _COUNTERS}}
        for (bucket, week), values in sorted(counts.items())
    ]
    statement = dialect_insert(session)(DeletionAggregate)
    table = DeletionAggregate.__table__
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["bucket", "week"],
            set_={c: table.c[c] + statement.excluded[c] for c in _COUNTERS},
        ),
        rows,
    )


# ---------------------------------------------------------------- reading


def cooling_off(
    session: Session,
    bucket: str,
    days: int,
    subject_ids: Sequence[str],
    *,
    now: datetime,
    decisions: Sequence[LedgerDecision] | None = None,
    secret: bytes | None = None,
) -> set[str]:
    """Subjects among ``subject_ids`` rejected (or excluded) in ``bucket`` within ``days``;
    ``decisions`` narrows it to one of the two. A subject erased since is kept under the
    keyed hash of their key (compliance.audit.subject_keys): ``secret`` finds them by it."""
    if days <= 0 or not subject_ids:
        return set()
    since = now - timedelta(days=days)
    forms = key_forms(subject_ids, secret)
    found = session.scalars(
        select(ComplianceProfile.subject_id)
        .join(DecisionLedger, DecisionLedger.compliance_profile_id == ComplianceProfile.id)
        .where(
            ComplianceProfile.subject_id.in_(list(forms)),
            cooling_off_condition(bucket, since, decisions),
        )
        .distinct()
    )
    return {forms[stored] for stored in found}


def cooling_off_condition(
    bucket: str, since: datetime, decisions: Sequence[LedgerDecision] | None = None
) -> ColumnElement[bool]:
    """Ledger rows that keep a subject out of ``bucket``: rejected or excluded (or only
    ``decisions``) after ``since``."""
    return and_(
        DecisionLedger.bucket == bucket,
        DecisionLedger.decision.in_(decisions or _KEPT),
        DecisionLedger.decided_at > since,
    )


def aggregates(session: Session) -> list[DeletionAggregate]:
    return list(
        session.scalars(
            select(DeletionAggregate).order_by(DeletionAggregate.bucket, DeletionAggregate.week)
        )
    )


# ---------------------------------------------------------------- tallies


def record_tallies(session: Session) -> dict[tuple[str, RecordState, date], int]:
    """Live deletion records per (bucket, state, week): what counting them all would give.

    The week is that of what last happened to the record: applied, last changed (failed or
    excluded), or found (the rest). Purged records are not here; the aggregates hold them.
    """
    return {
        (bucket, RecordState(state), as_date(week)): n
        for (bucket, state, week), n in tally_sums(session, DeletionTally).items()
    }
