"""Compliance rows in one line each, for service tests that need a state, not a whole demo.

Each builder adds its row to the session and flushes, so the id is there to use; the
defaults are the plainest valid row (a closed-account record, an access request by support).
"""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import count

from sqlalchemy.orm import Session

from compliance.dsar.deadlines import due_date, latest_due_date
from compliance.policy.jurisdictions import GDPR, Jurisdiction
from compliance.store.models import ComplianceProfile, DeletionBatch, DeletionRecord, DsarRequest
from compliance.store.states import BatchStatus, DsarKind, DsarStatus

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
BUCKET = "closed_accounts"
_serial = count(1)


def profile(session: Session, subject_id: str | None = None) -> ComplianceProfile:
    row = ComplianceProfile(subject_id=subject_id or str(next(_serial)))
    session.add(row)
    session.flush()
    return row


def batch(session: Session, *, bucket: str = BUCKET, status: BatchStatus = BatchStatus.PENDING,
          records: int = 0) -> DeletionBatch:  # fmt: skip
    """A batch with ``records`` fresh records awaiting its review."""
    row = DeletionBatch(bucket=bucket, reviewed_status=status)
    session.add(row)
    session.flush()
    for _ in range(records):
        record(session, batch=row)
    return row


def record(session: Session, *, batch: DeletionBatch | None = None, bucket: str = BUCKET,
           scheduled_at: datetime = NOW) -> DeletionRecord:  # fmt: skip
    row = DeletionRecord(
        compliance_profile_id=profile(session).id,
        bucket=batch.bucket if batch else bucket,
        deletion_batch_id=batch.id if batch else None,
        deletion_scheduled_at=scheduled_at,
    )
    session.add(row)
    session.flush()
    return row


def dsar_request(session: Session, *, kind: DsarKind = DsarKind.ACCESS,
                 status: DsarStatus = DsarStatus.PENDING, subject_id: str = "21",
                 requested_at: datetime = NOW, law: Jurisdiction = GDPR,
                 completed_at: datetime | None = None) -> DsarRequest:  # fmt: skip
    """A request under ``law``, with the deadlines intake would have stored."""
    row = DsarRequest(
        reference=f"DSAR-2026-{next(_serial):06d}",
        kind=kind,
        subject_id=subject_id,
        status=status,
        requested_by="support@example.com",
        requested_at=requested_at,
        jurisdiction=law.name,
        due_at=due_date(requested_at, law),
        latest_due_at=latest_due_date(requested_at, law),
        completed_at=completed_at,
        identity_method="signed_in_account",
    )
    session.add(row)
    session.flush()
    return row
