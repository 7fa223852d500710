"""Progress figures for the dashboard and the alerts, computed by SQL aggregates.

Per-bucket and per-week figures add the permanent aggregates purge folds its removals into
(compliance.deletion.ledger), so they read the same before and after purge.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from enum import StrEnum

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from compliance.deletion.ledger import as_date, week_of
from compliance.store.models import (
    DeletionAggregate,
    DeletionBatch,
    DeletionRecord,
    utcnow,
)
from compliance.store.queries import batch_in, record_accepted, record_in
from compliance.store.sql import count_if
from compliance.store.states import BatchStatus, RecordState

# Per batch, records by where they stand; the last column counts those pending apply and
# "completed" those applied (names the progress page and alerts already show).
BATCH_COLUMNS = [
    "total",
    BatchStatus.ACCEPTED.value,
    RecordState.EXCLUDED.value,
    "completed",
    RecordState.FAILED.value,
    BatchStatus.PENDING.value,
]

_R = DeletionRecord
_applied = record_in(RecordState.APPLIED)
_accepted = record_accepted
_failed = record_in(RecordState.FAILED)
_excluded = record_in(RecordState.EXCLUDED)
_unbatched = record_in(RecordState.UNBATCHED)
_awaiting_review = record_in(RecordState.AWAITING_REVIEW)
_pending_apply = record_in(RecordState.PENDING_APPLY)


_BATCH_COUNTS = [_accepted, _excluded, _applied, _failed, _pending_apply]
# Per bucket, in the progress table's column order; excluded records show as "kept".
_BUCKET_STATES = [
    RecordState.UNBATCHED,
    RecordState.AWAITING_REVIEW,
    RecordState.APPLIED,
    RecordState.FAILED,
    RecordState.PENDING_APPLY,
]


def batch_progress(
    session: Session, *, bucket: str | None = None, batch_ids: list[int] | None = None
) -> pd.DataFrame:
    """Per batch: records in it, accepted, excluded, completed (applied), failed, pending."""
    query = (
        select(
            DeletionBatch.id.label("batch_id"),
            DeletionBatch.bucket,
            DeletionBatch.reviewed_status,
            DeletionBatch.created_at,
            DeletionBatch.reviewed_by,
            DeletionBatch.reviewed_at,
            func.count(_R.id).label("total"),
            *[count_if(c).label(n) for c, n in zip(_BATCH_COUNTS, BATCH_COLUMNS[1:], strict=True)],
        )
        .outerjoin(_R, _R.deletion_batch_id == DeletionBatch.id)
        .group_by(DeletionBatch.id)
        .order_by(DeletionBatch.id)
    )
    if bucket:
        query = query.where(DeletionBatch.bucket == bucket)
    if batch_ids is not None:
        query = query.where(DeletionBatch.id.in_(batch_ids))
    rows = session.execute(query).mappings().all()
    columns = [
        "batch_id", "bucket", "reviewed_status", "created_at", "reviewed_by", "reviewed_at",
        *BATCH_COLUMNS,
    ]  # fmt: skip
    return pd.DataFrame([dict(r) for r in rows], columns=columns)


def bucket_progress(session: Session) -> pd.DataFrame:
    """Per bucket: batches by review status and records by where they stand."""
    records = (
        session.execute(
            select(
                _R.bucket,
                func.count(_R.id).label("records"),
                *[count_if(record_in(s)).label(s.value) for s in _BUCKET_STATES],
                count_if(_excluded).label("kept"),
            ).group_by(_R.bucket)
        )
        .mappings()
        .all()
    )
    batches = (
        session.execute(
            select(
                DeletionBatch.bucket,
                *[count_if(batch_in(s)).label(f"batches_{s.value}") for s in BatchStatus],
            ).group_by(DeletionBatch.bucket)
        )
        .mappings()
        .all()
    )
    A = DeletionAggregate
    purged = (
        session.execute(
            select(
                A.bucket,
                func.sum(A.batches_accepted).label("batches_accepted"),
                func.sum(A.batches_rejected).label("batches_rejected"),
                func.sum(A.records_erased).label("applied"),
                func.sum(A.records_kept).label("kept"),
            ).group_by(A.bucket)
        )
        .mappings()
        .all()
    )
    columns = [
        "bucket", "batches_pending", "batches_accepted", "batches_rejected", "records",
        *(s.value for s in _BUCKET_STATES), "kept",
    ]  # fmt: skip
    frame = pd.DataFrame([dict(r) for r in batches], columns=columns[:4]).merge(
        pd.DataFrame([dict(r) for r in records], columns=[columns[0], *columns[4:]]),
        on="bucket",
        how="outer",
    )
    frame = frame.fillna(0).astype({c: "int64" for c in columns[1:]})[columns]
    if purged:
        # What purge removed, added back: records erased or kept, batches decided.
        removed = pd.DataFrame([dict(r) for r in purged]).fillna(0)
        removed["records"] = removed["applied"] + removed["kept"]
        frame = (
            pd.concat([frame, removed], ignore_index=True)
            .fillna(0)
            .groupby("bucket", as_index=False)
            .sum()
            .astype({c: "int64" for c in columns[1:]})[columns]
        )
    return frame.sort_values("bucket", ignore_index=True)


def deletions_per_week(
    session: Session, *, weeks: int = 12, now: datetime | None = None
) -> pd.DataFrame:
    """Records applied per bucket and week (weeks start on Monday, UTC), for the progress chart."""
    now = now or utcnow()
    # Whole weeks, from the Monday the window starts in: purged and live records count alike.
    start = (now - timedelta(weeks=weeks)).date()
    first_week = start - timedelta(days=start.weekday())
    since = datetime.combine(first_week, time(), UTC)
    applied_at = _R.deletion_applied_at
    week = week_of(session, applied_at)
    rows = session.execute(
        select(week.label("week"), _R.bucket, func.count().label("applied"))
        .where(applied_at >= since)
        .group_by(week, _R.bucket)
    ).all()
    counts: dict[tuple[object, str], int] = {}
    for when, bucket, n in rows:
        counts[(as_date(when), bucket)] = n
    # Erasures purge removed, by the week they were applied.
    for when, bucket, n in session.execute(
        select(
            DeletionAggregate.week, DeletionAggregate.bucket, DeletionAggregate.records_erased
        ).where(DeletionAggregate.week >= first_week, DeletionAggregate.records_erased > 0)
    ):
        key = (as_date(when), bucket)
        counts[key] = counts.get(key, 0) + n
    frame = pd.DataFrame(
        [(w, b, n) for (w, b), n in sorted(counts.items())], columns=["week", "bucket", "applied"]
    )
    return frame


class WeekOutcome(StrEnum):
    """What happened to a record in a week, as Progress charts it (a report's words, not stored)."""

    ERASED = "erased"
    REJECTED = "rejected"  # its batch was
    FAILED = "failed"  # its last erasure attempt
    PENDING = "pending"  # found that week, not yet erased or kept


OUTCOMES = [o.value for o in WeekOutcome]


def outcomes_per_week(
    session: Session, *, weeks: int = 12, now: datetime | None = None
) -> pd.DataFrame:
    """Per bucket and week (Monday, UTC): records erased, rejected, failed, still pending.

    Each record counts once, in the week of what happened to it: erased when applied,
    rejected when its batch was rejected, failed when its last attempt failed; pending
    records (found but not yet erased or kept) count in the week they were found.
    """
    now = now or utcnow()
    since = now - timedelta(weeks=weeks)
    batch_reviewed = DeletionBatch.reviewed_at
    sources = {
        WeekOutcome.ERASED: (_R.deletion_applied_at, _applied, None),
        WeekOutcome.REJECTED: (
            batch_reviewed,
            batch_in(BatchStatus.REJECTED) & _R.accepted_for_deletion.is_(False),
            DeletionBatch,
        ),
        WeekOutcome.FAILED: (_R.updated_at, _failed, None),
        WeekOutcome.PENDING: (
            _R.created_at,
            _R.deletion_applied_at.is_(None)
            & _R.deletion_error.is_(None)
            & _R.accepted_for_deletion.is_not(False),
            None,
        ),
    }
    parts = []
    for outcome, (when, condition, join) in sources.items():
        week = week_of(session, when)
        query = select(week.label("week"), _R.bucket, func.count().label("records"))
        if join is not None:
            query = query.join(DeletionBatch, DeletionBatch.id == _R.deletion_batch_id)
        rows = session.execute(
            query.where(condition, when >= since).group_by(week, _R.bucket)
        ).all()
        parts += [(w, b, outcome.value, n) for w, b, n in rows]
    frame = pd.DataFrame(parts, columns=["week", "bucket", "outcome", "records"])
    if frame.empty:
        return pd.DataFrame(columns=["week", "bucket", *OUTCOMES])
    frame["week"] = pd.to_datetime(frame["week"]).dt.date
    table = (
        frame.pivot_table(
            index=["week", "bucket"], columns="outcome", values="records", aggfunc="sum"
        )
        .reindex(columns=OUTCOMES)
        .fillna(0)
        .astype("int64")
        .reset_index()
    )
    table.columns.name = None
    return table.sort_values(["week", "bucket"], ignore_index=True)
