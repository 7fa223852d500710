"""Progress figures for the dashboard and the alerts, computed by SQL aggregates."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from compliance.store.models import DeletionBatch, DeletionRecord, utcnow
from compliance.store.sql import count_if

BATCH_COLUMNS = ["total", "accepted", "excluded", "completed", "failed", "pending"]


_R = DeletionRecord
_applied = _R.deletion_applied_at.is_not(None)
_accepted = _R.accepted_for_deletion.is_(True)
_failed = _accepted & _R.deletion_applied_at.is_(None) & _R.deletion_error.is_not(None)
_unbatched = _R.deletion_batch_id.is_(None) & _R.accepted_for_deletion.is_(None)
_awaiting_review = _R.deletion_batch_id.is_not(None) & _R.accepted_for_deletion.is_(None)
_pending_apply = _accepted & _R.deletion_applied_at.is_(None) & _R.deletion_error.is_(None)


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
            count_if(_accepted).label("accepted"),
            count_if(_R.accepted_for_deletion.is_(False)).label("excluded"),
            count_if(_applied).label("completed"),
            count_if(_failed).label("failed"),
            count_if(_pending_apply).label("pending"),
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
                count_if(_unbatched).label("unbatched"),
                count_if(_awaiting_review).label("awaiting_review"),
                count_if(_applied).label("applied"),
                count_if(_failed).label("failed"),
                count_if(_pending_apply).label("pending_apply"),
                count_if(_R.accepted_for_deletion.is_(False)).label("kept"),
            ).group_by(_R.bucket)
        )
        .mappings()
        .all()
    )
    batches = (
        session.execute(
            select(
                DeletionBatch.bucket,
                count_if(DeletionBatch.reviewed_status == "pending").label("batches_pending"),
                count_if(DeletionBatch.reviewed_status == "accepted").label("batches_accepted"),
                count_if(DeletionBatch.reviewed_status == "rejected").label("batches_rejected"),
            ).group_by(DeletionBatch.bucket)
        )
        .mappings()
        .all()
    )
    columns = [
        "bucket", "batches_pending", "batches_accepted", "batches_rejected", "records",
        "unbatched", "awaiting_review", "applied", "failed", "pending_apply", "kept",
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


OUTCOMES = ["erased", "rejected", "failed", "pending"]


def _week_of(session: Session, column: Any) -> Any:
    """The Monday (UTC) starting the value's week, computed by the database."""
    if session.get_bind().dialect.name == "postgresql":
        return func.date_trunc("week", column)
    return func.date(column, "weekday 0", "-6 days")


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
        "erased": (_R.deletion_applied_at, _applied, None),
        "rejected": (
            batch_reviewed,
            (DeletionBatch.reviewed_status == "rejected") & _R.accepted_for_deletion.is_(False),
            DeletionBatch,
        ),
        "failed": (_R.updated_at, _failed, None),
        "pending": (
            _R.created_at,
            _R.deletion_applied_at.is_(None)
            & _R.deletion_error.is_(None)
            & _R.accepted_for_deletion.is_not(False),
            None,
        ),
    }
    parts = []
    for outcome, (when, condition, join) in sources.items():
        week = _week_of(session, when)
        query = select(week.label("week"), _R.bucket, func.count().label("records"))
        if join is not None:
            query = query.join(DeletionBatch, DeletionBatch.id == _R.deletion_batch_id)
        rows = session.execute(
            query.where(condition, when >= since).group_by(week, _R.bucket)
        ).all()
        parts += [(w, b, outcome, n) for w, b, n in rows]
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
