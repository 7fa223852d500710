"""Read models for the review dashboard: batches, their records, impact and the audit log.

Every list is paged in the database and every count is an SQL aggregate over the page's
ids only, so a page costs a handful of indexed queries however many batches exist.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from compliance.audit.texts import readable_all
from compliance.deletion.erase import impact
from compliance.deletion.holds import held_profiles, profile_on_hold
from compliance.deletion.plans import load_plans, steps
from compliance.deletion.review import get_batch
from compliance.dsar import requests as dsar
from compliance.dsar.deadlines import days_left, effective_due_at
from compliance.errors import InvalidInput
from compliance.policy.datamap import DataMap
from compliance.policy.strategies import ErasureAction
from compliance.reports.dsar_stats import list_dsar_requests
from compliance.store.models import (
    AuditEvent,
    ComplianceProfile,
    DeletionBatch,
    DeletionRecord,
    DsarRequest,
    utcnow,
)
from compliance.store.queries import (
    batch_pending,
    record_in,
    record_not_excluded,
    record_open,
    record_state,
)
from compliance.store.sql import count_if
from compliance.store.states import BatchStatus, DsarKind, RecordState

BATCH_STATUSES = tuple(s.value for s in BatchStatus)
MAX_PAGE_SIZE = 500
AUDIT_EXPORT_ROWS = 100_000

BATCH_COLUMNS = [
    "batch_id", "bucket", "status", "records", "excluded", "held", "created_at", "age_days",
    "reviewed_by", "reviewed_at", "reviewed_reason",
]  # fmt: skip
#: ``state`` is the record's RecordState (store.queries.record_state), for pages to act on;
#: ``flags`` says the same and more in words, for people to read.
RECORD_COLUMNS = [
    "record_id", "profile_id", "subject_id", "created_at", "scheduled_at", "flags", "note",
    "state",
]  # fmt: skip
DSAR_COLUMNS = [
    "reference", "kind", "status", "subject_type", "subject_id", "requested_by", "requested_at",
    "due",
    "days_left", "overdue", "reviewed_by", "completed_at",
]  # fmt: skip
# What the viewer may do next (compliance.dsar.requests.next_actions); pages hide them.
DSAR_ACTION_COLUMNS = ["can_review", "can_extend", "can_retry", "can_download"]
AUDIT_COLUMNS = ["id", "occurred_at", "actor", "action", "target_type", "target_id", "details"]


@dataclass(frozen=True)
class Page:
    """One page of a longer list: its rows, and how many rows the whole list has."""

    frame: pd.DataFrame
    total: int
    offset: int
    limit: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.limit))


def _check_paging(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput(f"page size must be between 1 and {MAX_PAGE_SIZE}, got {limit}")
    if offset < 0:
        raise InvalidInput(f"offset must be 0 or more, got {offset}")


# ---------------------------------------------------------------- batches


def batch_buckets(session: Session) -> list[str]:
    """Buckets that have batches, for the filter (indexed distinct)."""
    return list(
        session.scalars(select(DeletionBatch.bucket).distinct().order_by(DeletionBatch.bucket))
    )


def list_batches(
    session: Session,
    *,
    bucket: str | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
    now: datetime | None = None,
) -> Page:
    """Batches, oldest first, with record counts and age; counts only for the page's batches."""
    _check_paging(limit, offset)
    if status is not None and status not in BATCH_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(BATCH_STATUSES)}, got '{status}'")
    conditions = []
    if bucket:
        conditions.append(DeletionBatch.bucket == bucket)
    if status:
        conditions.append(DeletionBatch.reviewed_status == status)
    total = session.scalar(select(func.count()).select_from(DeletionBatch).where(*conditions))
    batches = session.scalars(
        select(DeletionBatch)
        .where(*conditions)
        .order_by(DeletionBatch.id)
        .limit(limit)
        .offset(offset)
    ).all()
    now = now or utcnow()
    counts = _batch_counts(session, [b.id for b in batches], now)
    rows = [_batch_row(b, counts.get(b.id), now) for b in batches]
    return Page(pd.DataFrame(rows, columns=BATCH_COLUMNS), total or 0, offset, limit)


def _batch_counts(session: Session, ids: list[int], now: datetime) -> dict[int, Any]:
    """Records, exclusions and holds per batch, in one aggregate over the page's ids only."""
    return {
        row.batch_id: row
        for row in session.execute(
            select(
                DeletionRecord.deletion_batch_id.label("batch_id"),
                func.count().label("records"),
                # Only records an officer kept out one by one: a rejection keeps all of them,
                # and calling those "excluded" would misstate what the officer did.
                count_if(
                    record_in(RecordState.EXCLUDED) & DeletionRecord.is_manually_reviewed.is_(True)
                ).label("excluded"),
                count_if(profile_on_hold(DeletionRecord.compliance_profile_id, now)).label("held"),
            )
            .where(DeletionRecord.deletion_batch_id.in_(ids))
            .group_by(DeletionRecord.deletion_batch_id)
        )
    }


def _batch_row(b: DeletionBatch, counts: Any, now: datetime) -> dict[str, Any]:
    """One batch as the page shows it; a batch whose records were purged counts zero."""
    return {
        "batch_id": b.id,
        "bucket": b.bucket,
        "status": b.reviewed_status,
        "records": counts.records if counts is not None else 0,
        "excluded": counts.excluded if counts is not None else 0,
        "held": counts.held if counts is not None else 0,
        "created_at": b.created_at,
        "age_days": (now - b.created_at).days,
        "reviewed_by": b.reviewed_by,
        "reviewed_at": b.reviewed_at,
        "reviewed_reason": b.reviewed_reason,
    }


def _flags(
    accepted: bool | None,
    manual: bool,
    applied: datetime | None,
    error: str | None,
    held: bool = False,
) -> str:
    """Where a record stands, in the words of the decision that put it there."""
    flags: list[str] = ["on legal hold"] if held else []
    if accepted is False:
        # Kept out one by one (with a note) is an exclusion; kept with its whole batch
        # is the batch's rejection.
        flags.append(RecordState.EXCLUDED if manual else BatchStatus.REJECTED)
    elif accepted is True:
        flags.append(BatchStatus.ACCEPTED)
    if manual:
        flags.append("manually reviewed")
    if applied is not None:
        flags.append(RecordState.APPLIED)
    if error:
        flags.append(RecordState.FAILED)
    return ", ".join(flags)


def batch_records(session: Session, batch_id: int, *, limit: int = 100, offset: int = 0) -> Page:
    """A batch's records with profile id, subject key, created and flags, in id order."""
    _check_paging(limit, offset)
    get_batch(session, batch_id)
    where = DeletionRecord.deletion_batch_id == batch_id
    total = session.scalar(select(func.count()).select_from(DeletionRecord).where(where)) or 0
    rows = session.execute(
        select(
            DeletionRecord.id,
            DeletionRecord.compliance_profile_id,
            ComplianceProfile.subject_id,
            DeletionRecord.created_at,
            DeletionRecord.deletion_scheduled_at,
            DeletionRecord.accepted_for_deletion,
            DeletionRecord.is_manually_reviewed,
            DeletionRecord.deletion_applied_at,
            DeletionRecord.deletion_error,
            DeletionRecord.review_note,
        )
        .join(ComplianceProfile, ComplianceProfile.id == DeletionRecord.compliance_profile_id)
        .where(where)
        .order_by(DeletionRecord.id)
        .limit(limit)
        .offset(offset)
    ).all()
    held = held_profiles(session, [r.compliance_profile_id for r in rows])
    frame = pd.DataFrame(
        [
            {
                "record_id": r.id,
                "profile_id": r.compliance_profile_id,
                "subject_id": r.subject_id,
                "created_at": r.created_at,
                "scheduled_at": r.deletion_scheduled_at,
                "flags": _flags(
                    r.accepted_for_deletion,
                    r.is_manually_reviewed,
                    r.deletion_applied_at,
                    r.deletion_error,
                    r.compliance_profile_id in held,
                ),
                "note": r.review_note,
                "state": record_state(
                    batch_id=batch_id,
                    accepted=r.accepted_for_deletion,
                    applied_at=r.deletion_applied_at,
                    error=r.deletion_error,
                ),
            }
            for r in rows
        ],
        columns=RECORD_COLUMNS,
    )
    frame["subject_id"] = typed_keys(frame["subject_id"])
    return Page(frame, total, offset, limit)


def typed_keys(keys: pd.Series) -> pd.Series:
    """Subject keys as numbers when every one is a whole number, so 114 sorts before 1128.

    The compliance database stores keys as text whatever their type in the application
    database; a table sorted as text would put 1128 before 114.
    """
    text = keys.astype(str)
    # Leading zeros ("007") or signs would be lost as numbers: such keys stay text.
    if len(keys) and text.str.fullmatch(r"0|[1-9][0-9]{0,17}").all():
        return text.astype("int64")
    return keys


def batch_impact(session: Session, datamap: DataMap, batch_id: int) -> pd.DataFrame:
    """Per application table, rows accepting the batch would delete, anonymize or keep.

    Excluded records and subjects on legal hold are left out, as applying would leave them
    out; nothing is changed.
    """
    batch = get_batch(session, batch_id)
    bucket = datamap.policy.bucket(batch.bucket)
    keys = list(
        session.scalars(
            select(ComplianceProfile.subject_id)
            .join(DeletionRecord, DeletionRecord.compliance_profile_id == ComplianceProfile.id)
            .where(
                DeletionRecord.deletion_batch_id == batch_id,
                record_not_excluded,
                record_open,
                ~profile_on_hold(ComplianceProfile.id, utcnow()),
            )
        )
    )
    return subjects_impact(datamap, bucket.name, keys)


IMPACT_COLUMNS = ["table", "action", "rows", "legal_basis"]


def subjects_impact(datamap: DataMap, bucket: str, keys: list[str]) -> pd.DataFrame:
    """Per application table, rows erasing these subjects in ``bucket`` would delete,
    anonymize or keep (with the legal basis of what is kept); changes nothing."""
    if not keys:
        return pd.DataFrame(columns=IMPACT_COLUMNS)
    tables = datamap.policy.bucket(bucket).tables
    with datamap.engine.connect() as conn:
        frame = pd.DataFrame(impact(datamap, conn, tables, keys), columns=IMPACT_COLUMNS)
    # "retain 271" alone reads like a leak; the policy says why those rows must stay.
    mapped = datamap.policy.tables
    frame["legal_basis"] = [
        (mapped[t].legal_basis or "") if a == ErasureAction.RETAIN and t in mapped else ""
        for t, a in zip(frame["table"], frame["action"], strict=True)
    ]
    return frame


def request_impact(session: Session, datamap: DataMap, references: Sequence[str]) -> pd.DataFrame:
    """What approving these erasure requests would erase: the preview a batch shows, for their
    subjects in their kind's erasure-request bucket (access requests among them erase nothing; a
    legal hold still wins when the erasure is applied). Changes nothing."""
    by_kind: dict[str, list[str]] = {}
    for subject_type, subject_id in session.execute(
        select(DsarRequest.subject_type, DsarRequest.subject_id).where(
            DsarRequest.reference.in_(list(references)), DsarRequest.kind == DsarKind.ERASURE
        )
    ):
        by_kind.setdefault(subject_type, []).append(subject_id)
    session.rollback()
    if not by_kind:
        return pd.DataFrame(columns=IMPACT_COLUMNS)
    bucket = datamap.policy.erasure_bucket_name
    frames = [subjects_impact(datamap, bucket(kind), keys) for kind, keys in by_kind.items()]
    return pd.concat(frames, ignore_index=True)


def pending_batch_ids(session: Session, *, bucket: str | None = None) -> list[int]:
    """Every pending batch (of ``bucket``), oldest first: what "all matching the filter" means."""
    query = select(DeletionBatch.id).where(batch_pending)
    if bucket:
        query = query.where(DeletionBatch.bucket == bucket)
    return list(session.scalars(query.order_by(DeletionBatch.id)))


def bulk_impact(session: Session, datamap: DataMap, batch_ids: list[int]) -> pd.DataFrame:
    """The impact previews of several batches added up per table and action; changes nothing."""
    columns = IMPACT_COLUMNS
    frames = [batch_impact(session, datamap, b) for b in batch_ids]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=columns)
    summed = (
        pd.concat(frames)
        .groupby(["table", "action", "legal_basis"], as_index=False, sort=False)["rows"]
        .sum()
    )
    return summed[columns]


def accepted_plan(session: Session, batch_id: int) -> tuple[str | None, pd.DataFrame]:
    """The erasure plan the officer accepted (hash, and one row per table), for the batch page.

    Batches accepted before plans were kept, and rejected ones, have none.
    """
    batch = get_batch(session, batch_id)
    columns = ["table", "action", "columns"]
    if batch.accepted_plan_hash is None:
        return None, pd.DataFrame(columns=columns)
    plan = load_plans(session, [batch.accepted_plan_hash]).get(batch.accepted_plan_hash)
    frame = pd.DataFrame(
        [{**step, "columns": ", ".join(step["columns"])} for step in steps(plan or {"steps": []})],
        columns=columns,
    )
    return batch.accepted_plan_hash, frame


# ---------------------------------------------------------------- audit log


def audit_filter_values(session: Session) -> tuple[list[str], list[str]]:
    """Distinct actors and actions, for the audit log's filters (both columns are indexed)."""
    actors = list(session.scalars(select(AuditEvent.actor).distinct().order_by(AuditEvent.actor)))
    actions = list(
        session.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action))
    )
    return actors, actions


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _audit_conditions(
    actor: str | None, action: str | None, since: date | None, until: date | None
) -> list[object]:
    if since and until and since > until:
        raise InvalidInput(f"the start date {since} is after the end date {until}")
    conditions: list[object] = []
    if actor:
        conditions.append(AuditEvent.actor == actor)
    if action:
        conditions.append(AuditEvent.action == action)
    if since:
        conditions.append(AuditEvent.occurred_at >= _day_start(since))
    if until:
        conditions.append(AuditEvent.occurred_at < _day_start(until + timedelta(days=1)))
    return conditions


def _audit_frame(
    session: Session, conditions: list[object], limit: int, offset: int
) -> pd.DataFrame:
    rows = session.execute(
        select(*(getattr(AuditEvent, c) for c in AUDIT_COLUMNS))
        .where(*conditions)  # type: ignore[arg-type]
        .order_by(AuditEvent.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=AUDIT_COLUMNS)
    # A reason kept outside the chain is shown while it exists, "[removed after erasure]" after.
    frame["details"] = pd.Series(
        readable_all(session, [d or {} for d in frame["details"]]), index=frame.index, dtype=object
    )
    # Details are JSON objects; as text they fit a table cell and a CSV column.
    frame["details"] = frame["details"].map(lambda d: json.dumps(d, sort_keys=True, default=str))
    return frame


def audit_log(
    session: Session,
    *,
    actor: str | None = None,
    action: str | None = None,
    since: date | None = None,
    until: date | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Page:
    """Audit events, newest first, filtered by actor, action and UTC dates (both inclusive)."""
    _check_paging(limit, offset)
    conditions = _audit_conditions(actor, action, since, until)
    total = session.scalar(select(func.count()).select_from(AuditEvent).where(*conditions))  # type: ignore[arg-type]
    return Page(_audit_frame(session, conditions, limit, offset), total or 0, offset, limit)


def audit_log_export(
    session: Session,
    *,
    actor: str | None = None,
    action: str | None = None,
    since: date | None = None,
    until: date | None = None,
    max_rows: int = AUDIT_EXPORT_ROWS,
) -> pd.DataFrame:
    """The filtered audit log for a CSV download, newest first, capped at ``max_rows``."""
    return _audit_frame(session, _audit_conditions(actor, action, since, until), max_rows, 0)


# ---------------------------------------------------------------- DSAR requests


def dsar_requests(
    session: Session,
    *,
    status: str | None = None,
    kind: str | None = None,
    limit: int = 50,
    offset: int = 0,
    now: datetime | None = None,
) -> tuple[pd.DataFrame, bool]:
    """One page of requests, what needs action first, with days left; and whether more follow."""
    _check_paging(limit, offset)
    found = list_dsar_requests(
        session, status=status, kind=kind, limit=limit + 1, offset=offset, by_need=True
    )
    now = now or utcnow()
    rows = []
    for r in found[:limit]:
        due = effective_due_at(r)
        is_open = r.status in dsar.OPEN_STATUSES
        actions = dsar.next_actions(r)
        rows.append(
            {
                "reference": r.reference,
                "kind": r.kind,
                "status": r.status,
                "subject_type": r.subject_type,
                "subject_id": r.subject_id,
                "requested_by": r.requested_by,
                "requested_at": r.requested_at,
                "due": due,
                "days_left": days_left(due, now) if is_open else None,
                "overdue": is_open and due < now,
                "reviewed_by": r.reviewed_by,
                "completed_at": r.completed_at,
                **{name: getattr(actions, name) for name in DSAR_ACTION_COLUMNS},
            }
        )
    frame = pd.DataFrame(rows, columns=DSAR_COLUMNS + DSAR_ACTION_COLUMNS)
    frame["subject_id"] = typed_keys(frame["subject_id"])
    return frame, len(found) > limit
