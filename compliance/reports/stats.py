"""Progress figures for the dashboard and the alerts, computed by SQL aggregates."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from compliance.store.models import DeletionBatch, DeletionRecord, utcnow
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
    columns = [
        "bucket", "batches_pending", "batches_accepted", "batches_rejected", "records",
        *(s.value for s in _BUCKET_STATES), "kept",
    ]  # fmt: skip
    frame = pd.DataFrame([dict(r) for r in batches], columns=columns[:4]).merge(
        pd.DataFrame([dict(r) for r in records], columns=[columns[0], *columns[4:]]),
        on="bucket",
        how="outer",
    )
    return (
        frame.fillna(0)
        .astype({c: "int64" for c in columns[1:]})[columns]
        .sort_values("bucket", ignore_index=True)
    )


def deletions_per_week(
    session: Session, *, weeks: int = 12, now: datetime | None = None
) -> pd.DataFrame:
    """Records applied per bucket and week (weeks start on Monday, UTC), for the progress chart."""
    now = now or utcnow()
    applied_at = _R.deletion_applied_at
    if session.get_bind().dialect.name == "postgresql":
        week = func.date_trunc("week", applied_at)
    else:  # SQLite: back to the Monday of the value's week
        week = func.date(applied_at, "weekday 0", "-6 days")
    rows = session.execute(
        select(week.label("week"), _R.bucket, func.count().label("applied"))
        .where(applied_at >= now - timedelta(weeks=weeks))
        .group_by(week, _R.bucket)
        .order_by(week, _R.bucket)
    ).all()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=["week", "bucket", "applied"])
    frame["week"] = pd.to_datetime(frame["week"]).dt.date
    return frame
