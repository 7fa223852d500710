"""Progress figures for the dashboard and the alerts, computed by SQL aggregates.

Per-bucket and per-week figures add the permanent aggregates purge folds its removals into
(compliance.deletion.ledger), so they read the same before and after purge.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from enum import StrEnum

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from compliance.deletion.ledger import as_date, record_tallies
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
    # Kept by triggers as records change (compliance.deletion.ledger): no scan of the records.
    per_bucket: dict[str, dict[str, int]] = {}
    for (bucket, state, _week), n in record_tallies(session).items():
        counts = per_bucket.setdefault(bucket, {"records": 0})
        counts["records"] += n
        column = "kept" if state == RecordState.EXCLUDED else state.value
        counts[column] = counts.get(column, 0) + n
    records = [{"bucket": bucket, **counts} for bucket, counts in per_bucket.items()]
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
        pd.DataFrame(records, columns=[columns[0], *columns[4:]]),
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


def _first_week(now: datetime, weeks: int) -> date:
    """The Monday the window of ``weeks`` starts in: charts show whole weeks only."""
    start = (now - timedelta(weeks=weeks)).date()
    return start - timedelta(days=start.weekday())


def deletions_per_week(
    session: Session, *, weeks: int = 12, now: datetime | None = None
) -> pd.DataFrame:
    """Records applied per bucket and week (weeks start on Monday, UTC), for the progress chart."""
    first_week = _first_week(now or utcnow(), weeks)
    counts: dict[tuple[object, str], int] = {}
    for (bucket, state, week), n in record_tallies(session).items():
        if state == RecordState.APPLIED and week >= first_week:
            counts[(week, bucket)] = counts.get((week, bucket), 0) + n
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
    KEPT = "kept"  # excluded by a reviewer, one by one or with its rejected batch
    FAILED = "failed"  # its last erasure attempt
    PENDING = "pending"  # found that week, not yet erased or kept


OUTCOMES = [o.value for o in WeekOutcome]
# The outcome a record's state counts as: the per-bucket table's columns, week by week.
_OUTCOME_OF = {
    RecordState.APPLIED: WeekOutcome.ERASED,
    RecordState.EXCLUDED: WeekOutcome.KEPT,
    RecordState.FAILED: WeekOutcome.FAILED,
    RecordState.UNBATCHED: WeekOutcome.PENDING,
    RecordState.AWAITING_REVIEW: WeekOutcome.PENDING,
    RecordState.PENDING_APPLY: WeekOutcome.PENDING,
}


def outcomes_per_week(
    session: Session, *, weeks: int = 12, now: datetime | None = None
) -> pd.DataFrame:
    """Per bucket and week (Monday, UTC): records erased, kept, failed, still pending.

    Each record counts once, in the week of what last happened to it: erased when applied,
    kept when a reviewer excluded it (or rejected its batch), failed when its last attempt
    failed; pending records count in the week they were found. Records purge removed count
    from the aggregates, in the week they counted in before, so no week shrinks; summed over
    the weeks, erased and kept equal the per-bucket table's erased and kept.
    """
    first_week = _first_week(now or utcnow(), weeks)
    parts = [
        (week, bucket, _OUTCOME_OF[state].value, n)
        for (bucket, state, week), n in record_tallies(session).items()
        if week >= first_week
    ]
    A = DeletionAggregate
    for week, bucket, erased, kept in session.execute(
        select(A.week, A.bucket, A.records_erased, A.records_kept).where(A.week >= first_week)
    ):
        parts += [
            (as_date(week), bucket, WeekOutcome.ERASED.value, erased),
            (as_date(week), bucket, WeekOutcome.KEPT.value, kept),
        ]
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
    # A week whose only aggregate row counts batches (no record) shows no line.
    table = table[table[OUTCOMES].sum(axis=1) > 0]
    return table.sort_values(["week", "bucket"], ignore_index=True)
