"""Deletion records: one open decision per (subject, bucket), found by the bucket's rules."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from compliance.audit import record_event
from compliance.datamap import DataMap
from compliance.errors import InvalidInput
from compliance.logs import Progress
from compliance.models import ComplianceProfile, DeletionRecord, utcnow
from compliance.rules import iter_due_subjects


@dataclass(frozen=True)
class CreateRecordsResult:
    bucket: str
    due: int
    created: int
    skipped: int
    profiles_created: int
    elapsed_s: float
    executed: bool


def ensure_profiles(
    session: Session, subject_ids: list[str], now: datetime
) -> tuple[dict[str, int], int]:
    """Profile ids for the subjects, creating the missing ones in one statement."""
    found = dict(
        session.execute(
            select(ComplianceProfile.subject_id, ComplianceProfile.id).where(
                ComplianceProfile.subject_id.in_(subject_ids)
            )
        ).all()
    )
    missing = [s for s in subject_ids if s not in found]
    if missing:
        session.execute(
            insert(ComplianceProfile),
            [{"subject_id": s, "created_at": now, "updated_at": now} for s in missing],
        )
        found.update(
            session.execute(
                select(ComplianceProfile.subject_id, ComplianceProfile.id).where(
                    ComplianceProfile.subject_id.in_(missing)
                )
            ).all()
        )
    return found, len(missing)


def _open_in_bucket(session: Session, bucket: str, subject_ids: list[str]) -> set[str]:
    return set(
        session.scalars(
            select(ComplianceProfile.subject_id)
            .join(DeletionRecord, DeletionRecord.compliance_profile_id == ComplianceProfile.id)
            .where(
                ComplianceProfile.subject_id.in_(subject_ids),
                DeletionRecord.bucket == bucket,
                DeletionRecord.deletion_applied_at.is_(None),
            )
        )
    )


def add_records(
    session: Session,
    bucket: str,
    subject_ids: list[str],
    *,
    actor: str,
    scheduled_at: datetime,
    now: datetime,
    accepted: bool | None = None,
) -> tuple[int, int, int]:
    """Create the open records missing for these subjects; return (created, skipped, profiles)."""
    open_already = _open_in_bucket(session, bucket, subject_ids)
    wanted = [s for s in subject_ids if s not in open_already]
    if not wanted:
        return 0, len(subject_ids), 0
    profiles, new_profiles = ensure_profiles(session, wanted, now)
    session.execute(
        insert(DeletionRecord),
        [
            {
                "compliance_profile_id": profiles[s],
                "bucket": bucket,
                "deletion_scheduled_at": scheduled_at,
                "accepted_for_deletion": accepted,
                "is_manually_reviewed": False,
                "created_at": now,
                "updated_at": now,
            }
            for s in wanted
        ],
    )
    record_event(
        session,
        actor=actor,
        action="deletion_records.created",
        target_type="bucket",
        target_id=bucket,
        details={
            "created": len(wanted),
            "skipped": len(subject_ids) - len(wanted),
            "profile_ids": sorted(profiles[s] for s in wanted)[:1000],
        },
    )
    return len(wanted), len(subject_ids) - len(wanted), new_profiles


def create_deletion_records(
    session: Session,
    datamap: DataMap,
    bucket_name: str,
    *,
    actor: str,
    execute: bool,
    chunk_size: int = 5000,
    now: datetime | None = None,
) -> CreateRecordsResult:
    """Find the bucket's due subjects and open one record each; chunk by chunk, each committed.

    A run killed halfway keeps the chunks it committed; the rerun skips them as already open.
    """
    if chunk_size < 1:
        raise InvalidInput(f"--chunk-size must be at least 1, got {chunk_size}")
    bucket = datamap.policy.bucket(bucket_name)
    now = now or utcnow()
    scheduled_at = now + timedelta(days=bucket.grace_days)
    progress = Progress("deletion_records.progress", bucket=bucket.name)
    due = created = skipped = profiles = 0
    for chunk in iter_due_subjects(datamap, bucket, now, chunk=chunk_size):
        due += len(chunk)
        if execute:
            c, s, p = add_records(
                session, bucket.name, chunk, actor=actor, scheduled_at=scheduled_at, now=now
            )
            session.commit()
        else:
            s = len(_open_in_bucket(session, bucket.name, chunk))
            c, p = len(chunk) - s, 0
            session.rollback()
        created += c
        skipped += s
        profiles += p
        progress.advance(len(chunk), created=created, skipped=skipped)
    return CreateRecordsResult(
        bucket=bucket.name,
        due=due,
        created=created,
        skipped=skipped,
        profiles_created=profiles,
        elapsed_s=round(progress.elapsed, 3),
        executed=execute,
    )
