"""The one SQL spelling of each lifecycle state, for every module that selects or counts by it.

A deletion record's state is a combination of nullable columns; these predicates are the
only place that combination is written, and ``record_state`` the one Python reading of it.
``first_or_not_found`` is the one spelling of "this row, locked if asked, or NotFound".
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import ColumnElement, Select, and_, exists, or_
from sqlalchemy.orm import Session

from compliance.errors import NotFound
from compliance.store.models import (
    ComplianceProfile,
    DeletionBatch,
    DeletionRecord,
    DsarRequest,
    ErasureTask,
)
from compliance.store.states import OPEN_DSAR_STATUSES, BatchStatus, DsarStatus, RecordState

_R = DeletionRecord
_Row = TypeVar("_Row")

# ---------------------------------------------------------------- profiles

#: What names a profile: a key is unique only within its kind of data subject.
PROFILE_KEY = ["subject_id", "subject_type"]


def of_type(subject_type: str) -> ColumnElement[bool]:
    """Profiles of this kind of data subject (customer 5 is not employee 5)."""
    return ComplianceProfile.subject_type == subject_type


# ---------------------------------------------------------------- deletion records

record_open: ColumnElement[bool] = _R.deletion_applied_at.is_(None)
"""Not erased yet; at most one open record per subject and bucket."""

record_accepted: ColumnElement[bool] = _R.accepted_for_deletion.is_(True)
"""An officer (or a DSAR erasure without review) said erase; applied records included."""

record_undecided: ColumnElement[bool] = and_(record_open, _R.accepted_for_deletion.is_(None))
"""Open and nobody has decided yet: unbatched or awaiting review."""

record_not_excluded: ColumnElement[bool] = _R.accepted_for_deletion.is_not(False)

RECORD_STATE_SQL: dict[RecordState, ColumnElement[bool]] = {
    RecordState.UNBATCHED: and_(_R.deletion_batch_id.is_(None), _R.accepted_for_deletion.is_(None)),
    RecordState.AWAITING_REVIEW: and_(
        _R.deletion_batch_id.is_not(None), _R.accepted_for_deletion.is_(None)
    ),
    RecordState.EXCLUDED: _R.accepted_for_deletion.is_(False),
    RecordState.PENDING_APPLY: and_(record_accepted, record_open, _R.deletion_error.is_(None)),
    RecordState.FAILED: and_(record_accepted, record_open, _R.deletion_error.is_not(None)),
    RecordState.APPLIED: _R.deletion_applied_at.is_not(None),
}


def record_in(state: RecordState) -> ColumnElement[bool]:
    return RECORD_STATE_SQL[state]


def record_accepted_open() -> ColumnElement[bool]:
    """Accepted and not yet erased: pending apply or failed, whatever its schedule."""
    return and_(record_accepted, record_open)


def record_due(now: datetime, bucket: str | None = None) -> ColumnElement[bool]:
    """What apply-deletions erases now: accepted, open, and scheduled for no later than now."""
    due = and_(record_accepted, record_open, _R.deletion_scheduled_at <= now)
    return and_(_R.bucket == bucket, due) if bucket else due


def record_state(
    *,
    batch_id: int | None,
    accepted: bool | None,
    applied_at: datetime | None,
    error: str | None,
) -> RecordState:
    """The Python reading of ``RECORD_STATE_SQL`` for one loaded record."""
    if applied_at is not None:
        return RecordState.APPLIED
    if accepted is False:
        return RecordState.EXCLUDED
    if accepted is True:
        return RecordState.FAILED if error else RecordState.PENDING_APPLY
    return RecordState.UNBATCHED if batch_id is None else RecordState.AWAITING_REVIEW


# ---------------------------------------------------------------- deletion batches

batch_pending: ColumnElement[bool] = DeletionBatch.reviewed_status == BatchStatus.PENDING
batch_decided: ColumnElement[bool] = DeletionBatch.reviewed_status != BatchStatus.PENDING


def batch_in(status: BatchStatus) -> ColumnElement[bool]:
    return DeletionBatch.reviewed_status == status


# ---------------------------------------------------------------- DSAR requests

dsar_open: ColumnElement[bool] = DsarRequest.status.in_(OPEN_DSAR_STATUSES)
# The deadline in force is compliance.dsar.deadlines.deadline_in_force, beside its Python twin.


def dsar_in(status: DsarStatus) -> ColumnElement[bool]:
    return DsarRequest.status == status


def dsar_claimable(now: datetime, lease: timedelta) -> ColumnElement[bool]:
    """Approved requests, and claims whose worker died before doing anything lasting.

    A worker killed between its claim and its result leaves a request processing with no
    export and no deletion record; once its lease runs out the next run takes it over.
    (Erasures waiting for their record keep the record id.)
    """
    abandoned = and_(
        dsar_in(DsarStatus.PROCESSING),
        DsarRequest.deletion_record_id.is_(None),
        # An access request with tasks waits for its systems; processing settles it.
        ~exists().where(ErasureTask.dsar_request_id == DsarRequest.id),
        or_(
            DsarRequest.processing_started_at.is_(None),
            DsarRequest.processing_started_at <= now - lease,
        ),
    )
    # A failed attempt waits for its backoff (compliance.dsar.processing.backoff).
    due = and_(
        dsar_in(DsarStatus.APPROVED),
        or_(DsarRequest.next_attempt_at.is_(None), DsarRequest.next_attempt_at <= now),
    )
    return or_(due, abandoned)


def dsar_deliverable(now: datetime, max_attempts: int) -> ColumnElement[bool]:
    """Ready exports a run sends the link of now: not waiting out a backoff, attempts left."""
    return and_(
        dsar_in(DsarStatus.READY),
        DsarRequest.attempts < max_attempts,
        or_(DsarRequest.next_attempt_at.is_(None), DsarRequest.next_attempt_at <= now),
    )


# ---------------------------------------------------------------- lookups


def first_or_not_found(
    session: Session, query: Select[_Row], missing: str, *, lock: bool = False
) -> _Row:
    """The query's first row, locked ``FOR UPDATE`` when asked, or NotFound saying ``missing``."""
    if lock:
        query = query.with_for_update()
    row = session.scalars(query).first()
    if row is None:
        raise NotFound(missing)
    return row
