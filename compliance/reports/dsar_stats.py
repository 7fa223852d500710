"""DSAR read models: the paginated list, deadlines coming up, and the regulator's numbers."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from compliance.dsar.deadlines import days_left, deadline_in_force
from compliance.dsar.requests import KINDS, STATUSES
from compliance.errors import InvalidInput
from compliance.store.models import DsarRequest, utcnow
from compliance.store.queries import dsar_in, dsar_open
from compliance.store.sql import aware_utc
from compliance.store.states import OPEN_DSAR_STATUSES, DsarStatus

if TYPE_CHECKING:  # pandas costs ~80 MB; only the dashboard's reads need it
    import pandas as pd


def list_dsar_requests(
    session: Session,
    *,
    status: str | None = None,
    kind: str | None = None,
    subject_id: str | None = None,
    limit: int = 50,
    offset: int = 0,
    by_need: bool = False,
) -> list[DsarRequest]:
    """Newest first; or ``by_need``: open requests first, soonest due (so overdue) on top."""
    query = select(DsarRequest)
    if status is not None:
        if status not in STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(STATUSES)}, got '{status}'")
        query = query.where(DsarRequest.status == status)
    if kind is not None:
        if kind not in KINDS:
            raise InvalidInput(f"kind must be one of {', '.join(KINDS)}, got '{kind}'")
        query = query.where(DsarRequest.kind == kind)
    if subject_id is not None:
        query = query.where(DsarRequest.subject_id == str(subject_id))
    if by_need:
        is_open = dsar_open
        due = deadline_in_force
        query = query.order_by(
            case((is_open, 0), else_=1), case((is_open, due), else_=None), DsarRequest.id.desc()
        )
    else:
        query = query.order_by(DsarRequest.requested_at.desc(), DsarRequest.id.desc())
    return list(session.scalars(query.limit(limit).offset(offset)))


@dataclass(frozen=True)
class DsarCounters:
    """What needs action, over every request (not one page of them)."""

    open: int
    overdue: int
    due_this_week: int  # open, not overdue, due within seven days


def dsar_counters(session: Session, *, now: datetime | None = None) -> DsarCounters:
    now = now or utcnow()
    due = deadline_in_force
    is_open = dsar_open
    row = session.execute(
        select(
            func.count().filter(is_open),
            func.count().filter(is_open, due < now),
            func.count().filter(is_open, due >= now, due <= now + timedelta(days=7)),
        )
    ).one()
    return DsarCounters(open=row[0], overdue=row[1], due_this_week=row[2])


@dataclass(frozen=True)
class DsarOverview:
    total: int
    open_count: int
    completed_count: int
    on_time_rate: float | None  # completed on time / completed; None before any completes
    median_days_to_complete: float | None
    overdue: pd.DataFrame  # reference, kind, status, due, days_overdue
    by_status: dict[str, int]


def dsar_overview(session: Session, now: datetime | None = None) -> DsarOverview:
    """What a regulator would ask: how many are open, late, and how fast they complete."""
    now = now or utcnow()
    due = deadline_in_force
    by_status: dict[str, int] = {
        status: count
        for status, count in session.execute(
            select(DsarRequest.status, func.count()).group_by(DsarRequest.status)
        )
    }
    done = [
        (requested, completed, aware_utc(d))
        for requested, completed, d in session.execute(
            select(DsarRequest.requested_at, DsarRequest.completed_at, due).where(
                dsar_in(DsarStatus.COMPLETED), DsarRequest.completed_at.is_not(None)
            )
        )
        if completed is not None
    ]
    overdue_rows = session.execute(
        select(DsarRequest.reference, DsarRequest.kind, DsarRequest.status, due.label("due"))
        .where(dsar_open, due < now)
        .order_by(due)
    ).all()
    on_time = sum(1 for _, completed, d in done if completed <= d)
    durations = [
        (completed - requested).total_seconds() / 86400 for requested, completed, _ in done
    ]
    import pandas as pd

    overdue = pd.DataFrame(
        [
            {
                "reference": r.reference,
                "kind": r.kind,
                "status": r.status,
                "due": aware_utc(r.due),
                "days_overdue": -days_left(aware_utc(r.due), now),
            }
            for r in overdue_rows
        ],
        columns=["reference", "kind", "status", "due", "days_overdue"],
    )
    return DsarOverview(
        total=sum(by_status.values()),
        open_count=sum(by_status.get(s, 0) for s in OPEN_DSAR_STATUSES),
        completed_count=len(done),
        on_time_rate=(on_time / len(done)) if done else None,
        median_days_to_complete=round(statistics.median(durations), 2) if durations else None,
        overdue=overdue,
        by_status={s: by_status.get(s, 0) for s in STATUSES},
    )


MONTHLY_COLUMNS = ["month", "received", "completed", "on_time", "on_time_rate", "median_days"]
#: Per kind or per jurisdiction: volume, how many are open and overdue now, on time, median.
SPLIT_COLUMNS = ["received", "open", "overdue", "completed", "on_time", "on_time_rate",
                 "median_days"]  # fmt: skip
#: What requests are split by: the right asked, the law, and the kind of data subject.
SPLITS = ("kind", "jurisdiction", "subject_type")


def _received_since(session: Session, since: datetime, now: datetime) -> pd.DataFrame:
    """One row per request received since ``since``: what the regulator's figures count.

    On time means completed by the deadline in force (the extended one, if any); ``days``
    (receipt to completion) is there for completed requests only: open ones are not guessed at.
    """
    import pandas as pd

    rows = session.execute(
        select(
            DsarRequest.requested_at, DsarRequest.completed_at, DsarRequest.status,
            DsarRequest.kind, DsarRequest.jurisdiction, DsarRequest.subject_type,
            deadline_in_force,
        ).where(DsarRequest.requested_at >= since)
    ).all()  # fmt: skip
    records = []
    for requested, completed, status, kind, jurisdiction, subject_type, due in rows:
        received, due = aware_utc(requested), aware_utc(due)
        done = aware_utc(completed) if status == DsarStatus.COMPLETED and completed else None
        is_open = status in OPEN_DSAR_STATUSES
        records.append(
            {
                "month": received.strftime("%Y-%m"),
                "kind": kind,
                "jurisdiction": jurisdiction,
                "subject_type": subject_type,
                "open": is_open,
                "overdue": is_open and due < now,
                "completed": done is not None,
                "on_time": done is not None and done <= due,
                "days": None if done is None else (done - received).total_seconds() / 86400,
            }
        )
    columns = ["month", *SPLITS, "open", "overdue", "completed", "on_time", "days"]
    return pd.DataFrame(records, columns=columns)


def _summary(frame: pd.DataFrame, by: str) -> pd.DataFrame:
    """Per value of ``by``: received, open, overdue, completed, on time, its rate, median days."""
    import pandas as pd

    grouped = frame.groupby(by, sort=True)
    table = pd.DataFrame(
        {
            "received": grouped.size(),
            **{c: grouped[c].sum().astype("int64") for c in ("open", "overdue", "completed")},
            "on_time": grouped["on_time"].sum().astype("int64"),
            "median_days": grouped["days"].median().round(1),
        }
    ).reset_index()
    table["on_time_rate"] = (
        table["on_time"] / table["completed"].where(table["completed"] > 0)
    ).round(3)
    return table


def dsar_per_month(session: Session, *, months: int = 12, now: datetime | None = None) -> Any:
    """Per month a request was received (UTC): how many, how many completed, on time, median days.

    A month's median covers its completed requests only; open ones are not guessed at.
    """
    import pandas as pd

    now = now or utcnow()
    frame = _received_since(session, now - timedelta(days=31 * months), now)
    if frame.empty:
        return pd.DataFrame(columns=MONTHLY_COLUMNS)
    return _summary(frame, "month")[MONTHLY_COLUMNS]


def dsar_split(session: Session, by: str, *, months: int = 12, now: datetime | None = None) -> Any:
    """Requests received in the last ``months`` months per ``kind``, ``jurisdiction`` or
    ``subject_type`` (customers, employees…):
    volume, open and overdue now, completed, on time (by the deadline in force of each
    request's own jurisdiction), the on-time rate and the median days to complete."""
    import pandas as pd

    if by not in SPLITS:
        raise InvalidInput(f"requests are split by {', '.join(SPLITS)}, not '{by}'")
    now = now or utcnow()
    frame = _received_since(session, now - timedelta(days=31 * months), now)
    if frame.empty:
        return pd.DataFrame(columns=[by, *SPLIT_COLUMNS])
    return _summary(frame, by)[[by, *SPLIT_COLUMNS]]
