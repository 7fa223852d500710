"""Deletion batches: open records grouped for a compliance officer to accept or reject."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, case, func, insert, select, update
from sqlalchemy.orm import Session

from compliance.audit.chain import record_event, record_events
from compliance.emails import check_email
from compliance.errors import Conflict, InvalidInput, NotFound
from compliance.logs import Progress
from compliance.policy.loader import Policy
from compliance.store.engines import analyze
from compliance.store.models import DeletionBatch, DeletionRecord, utcnow
from compliance.store.sql import rows_changed

DEFAULT_MAX_BATCH_SIZE = 200
# Batches created per commit: a killed run loses at most this many, and the rerun makes them.
BATCHES_PER_COMMIT = 50


@dataclass(frozen=True)
class CreateBatchesResult:
    bucket: str
    batches: int
    records: int
    batch_ids: tuple[int, ...]
    elapsed_s: float
    executed: bool


def _unbatched(bucket: str):
    return (
        DeletionRecord.bucket == bucket,
        DeletionRecord.deletion_batch_id.is_(None),
        DeletionRecord.deletion_applied_at.is_(None),
        DeletionRecord.accepted_for_deletion.is_(None),
    )


def create_deletion_batches(
    session: Session,
    policy: Policy,
    bucket_name: str,
    *,
    actor: str,
    execute: bool,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
) -> CreateBatchesResult:
    """Group the bucket's unbatched open records, oldest first; each batch commits on its own."""
    bucket = policy.bucket(bucket_name)
    if max_batch_size < 1:
        raise InvalidInput(f"--max-batch-size must be at least 1, got {max_batch_size}")
    progress = Progress("deletion_batches.progress", bucket=bucket.name)
    if not execute:
        pending = session.scalar(select(func.count()).where(*_unbatched(bucket.name))) or 0
        batches = -(-pending // max_batch_size)
        return CreateBatchesResult(bucket.name, batches, pending, (), 0.0, False)
    analyze(session, DeletionRecord)
    created: list[int] = []
    records = 0
    last_id = 0
    records_table = cast(Table, DeletionRecord.__table__)
    while True:
        # Many batches per commit: one SELECT, one INSERT, one UPDATE per batch, one audit INSERT.
        ids = list(
            session.scalars(
                select(DeletionRecord.id)
                .where(*_unbatched(bucket.name), DeletionRecord.id > last_id)
                .order_by(DeletionRecord.id)
                .limit(max_batch_size * BATCHES_PER_COMMIT)
            )
        )
        if not ids:
            break
        now = utcnow()
        slices = [ids[i : i + max_batch_size] for i in range(0, len(ids), max_batch_size)]
        batch_ids = list(
            session.scalars(
                insert(DeletionBatch).returning(DeletionBatch.id, sort_by_parameter_order=True),
                [
                    {"bucket": bucket.name, "reviewed_status": "pending",
                     "created_at": now, "updated_at": now}
                    for _ in slices
                ],
            )
        )  # fmt: skip
        # One UPDATE for the group, by primary key: each id goes to the first slice it fits.
        session.connection().execute(
            update(records_table)
            .where(records_table.c.id.in_(ids), records_table.c.deletion_batch_id.is_(None))
            .values(
                deletion_batch_id=case(
                    *[
                        (records_table.c.id <= part[-1], batch_id)
                        for part, batch_id in zip(slices, batch_ids, strict=True)
                    ]
                ),
                updated_at=now,
            )
        )
        record_events(
            session,
            actor=actor,
            action="deletion_batch.created",
            target_type="deletion_batch",
            events=[
                (batch_id, {"bucket": bucket.name, "records": len(part)})
                for part, batch_id in zip(slices, batch_ids, strict=True)
            ],
        )
        session.commit()
        created += batch_ids
        records += len(ids)
        last_id = ids[-1]
        progress.advance(len(ids), batches=len(created))
    return CreateBatchesResult(
        bucket.name, len(created), records, tuple(created), round(progress.elapsed, 3), True
    )


# ---------------------------------------------------------------- review


@dataclass(frozen=True)
class ReviewResult:
    batch_id: int
    bucket: str
    decision: str
    accepted: int
    excluded: int
    rejected: int
    executed: bool


def get_batch(session: Session, batch_id: int) -> DeletionBatch:
    batch = session.get(DeletionBatch, batch_id)
    if batch is None:
        raise NotFound(f"no deletion batch with id {batch_id}")
    return batch


def _already_reviewed(batch: DeletionBatch) -> Conflict:
    when = batch.reviewed_at.strftime("%Y-%m-%d %H:%M UTC") if batch.reviewed_at else "earlier"
    return Conflict(
        f"batch {batch.id} was already {batch.reviewed_status} by {batch.reviewed_by} at {when}"
    )


def _check_exclusions(session: Session, batch: DeletionBatch, exclude: Mapping[int, str]) -> None:
    if not exclude:
        return
    members = set(
        session.scalars(
            select(DeletionRecord.id).where(
                DeletionRecord.deletion_batch_id == batch.id,
                DeletionRecord.id.in_(list(exclude)),
            )
        )
    )
    strangers = sorted(set(exclude) - members)
    if strangers:
        raise InvalidInput(f"record {strangers[0]} is not in batch {batch.id}")


def _mark_excluded(session: Session, exclude: Mapping[int, str], now: datetime) -> None:
    for record_id, note in exclude.items():
        session.execute(
            update(DeletionRecord)
            .where(DeletionRecord.id == record_id)
            .values(
                accepted_for_deletion=False,
                is_manually_reviewed=True,
                review_note=(note or "").strip() or None,
                updated_at=now,
            )
        )


def exclude_records(
    session: Session, batch_id: int, exclude: Mapping[int, str], *, actor: str
) -> int:
    """Keep single records out of a pending batch's deletion, each with the reviewer's note."""
    actor = check_email(actor, "reviewer")
    batch = get_batch(session, batch_id)
    if batch.reviewed_status != "pending":
        raise _already_reviewed(batch)
    _check_exclusions(session, batch, exclude)
    _mark_excluded(session, exclude, utcnow())
    record_event(
        session,
        actor=actor,
        action="deletion_records.excluded",
        target_type="deletion_batch",
        target_id=batch_id,
        details={"record_ids": sorted(exclude)},
    )
    session.commit()
    return len(exclude)


def include_records(session: Session, batch_id: int, record_ids: list[int], *, actor: str) -> int:
    """Undo exclusions in a still pending batch: the records go back to awaiting the decision.

    An exclusion is a draft of the officer's decision until the batch is decided; after
    that it is part of the decision and stays.
    """
    actor = check_email(actor, "reviewer")
    batch = get_batch(session, batch_id)
    if batch.reviewed_status != "pending":
        raise _already_reviewed(batch)
    wanted = sorted(set(record_ids))
    if not wanted:
        raise InvalidInput("choose at least one excluded record to put back")
    excluded = set(
        session.scalars(
            select(DeletionRecord.id).where(
                DeletionRecord.deletion_batch_id == batch_id,
                DeletionRecord.id.in_(wanted),
                DeletionRecord.accepted_for_deletion.is_(False),
            )
        )
    )
    strangers = [r for r in wanted if r not in excluded]
    if strangers:
        raise InvalidInput(f"record {strangers[0]} is not an excluded record of batch {batch_id}")
    session.execute(
        update(DeletionRecord)
        .where(DeletionRecord.id.in_(wanted))
        .values(
            accepted_for_deletion=None,
            is_manually_reviewed=False,
            review_note=None,
            updated_at=utcnow(),
        )
    )
    record_event(
        session,
        actor=actor,
        action="deletion_records.included",
        target_type="deletion_batch",
        target_id=batch_id,
        details={"record_ids": wanted},
    )
    session.commit()
    return len(wanted)


def review_batch(
    session: Session,
    batch_id: int,
    decision: str,
    *,
    reviewer: str,
    reason: str | None = None,
    exclude: Mapping[int, str] | None = None,
    execute: bool = True,
    now: datetime | None = None,
) -> ReviewResult:
    """Accept or reject a pending batch. The decision is final: a second review is refused."""
    if decision not in ("accept", "reject"):
        raise InvalidInput(f"decision must be accept or reject, got '{decision}'")
    reviewer = check_email(reviewer, "--reviewer")
    reason = (reason or "").strip() or None
    if decision == "reject" and not reason:
        raise InvalidInput("rejecting a batch needs a --reason")
    exclude = dict(exclude or {})
    if decision == "reject" and exclude:
        raise InvalidInput("--exclude only applies when accepting; a rejection keeps every record")
    batch = get_batch(session, batch_id)
    if batch.reviewed_status != "pending":
        raise _already_reviewed(batch)
    _check_exclusions(session, batch, exclude)
    counts = dict(
        session.execute(
            select(DeletionRecord.accepted_for_deletion, func.count())
            .where(DeletionRecord.deletion_batch_id == batch_id)
            .group_by(DeletionRecord.accepted_for_deletion)
        ).all()
    )
    total = sum(counts.values())
    already_excluded = counts.get(False, 0)
    status = "accepted" if decision == "accept" else "rejected"
    if decision == "accept":
        excluded = len(set(exclude)) + already_excluded
        accepted, rejected = total - excluded, 0
        # An exclusion in the same call may name a record already excluded earlier.
        if exclude:
            overlap = session.scalar(
                select(func.count()).where(
                    DeletionRecord.id.in_(list(exclude)),
                    DeletionRecord.accepted_for_deletion.is_(False),
                )
            )
            excluded -= overlap or 0
            accepted = total - excluded
    else:
        accepted, excluded, rejected = 0, 0, total
    result = ReviewResult(batch_id, batch.bucket, status, accepted, excluded, rejected, execute)
    if not execute:
        session.rollback()
        return result

    now = now or utcnow()
    # Compare-and-set: if someone decided since we read the batch, nothing changes.
    claimed = rows_changed(
        session.execute(
            update(DeletionBatch)
            .where(DeletionBatch.id == batch_id, DeletionBatch.reviewed_status == "pending")
            .values(
                reviewed_status=status,
                reviewed_by=reviewer,
                reviewed_at=now,
                reviewed_reason=reason,
                updated_at=now,
            )
        )
    )
    if claimed != 1:
        session.rollback()
        raise _already_reviewed(get_batch(session, batch_id))
    _mark_excluded(session, exclude, now)
    session.execute(
        update(DeletionRecord)
        .where(
            DeletionRecord.deletion_batch_id == batch_id,
            DeletionRecord.accepted_for_deletion.is_(None),
        )
        .values(accepted_for_deletion=decision == "accept", updated_at=now)
    )
    record_event(
        session,
        actor=reviewer,
        action=f"deletion_batch.{status}",
        target_type="deletion_batch",
        target_id=batch_id,
        details={
            "bucket": batch.bucket,
            "accepted": accepted,
            "excluded": excluded,
            "rejected": rejected,
            "excluded_record_ids": sorted(exclude),
            "reason": reason,
        },
    )
    session.commit()
    return result


# ---------------------------------------------------------------- several batches at once


@dataclass(frozen=True)
class BulkReviewPlan:
    """The batches one decision will cover, fixed when it is planned: later batches are not in."""

    decision: str
    batch_ids: tuple[int, ...]
    bucket: str | None
    records: int


@dataclass(frozen=True)
class BulkReviewResult:
    """Each batch decided on its own; a batch someone decided meanwhile is skipped, with why."""

    decision: str
    decided: tuple[ReviewResult, ...]
    skipped: tuple[tuple[int, str], ...]
    executed: bool

    @property
    def records(self) -> int:
        return sum(r.accepted + r.excluded + r.rejected for r in self.decided)


def plan_bulk_review(
    session: Session,
    decision: str,
    *,
    batch_ids: list[int] | None = None,
    bucket: str | None = None,
    policy: Policy | None = None,
) -> BulkReviewPlan:
    """Name the pending batches a bulk decision covers: the given ids, or all of a bucket's.

    With ``batch_ids``, those (any decided meanwhile are skipped when carried out);
    without, every pending batch of ``bucket`` (checked against ``policy`` when given).
    """
    if decision not in ("accept", "reject"):
        raise InvalidInput(f"decision must be accept or reject, got '{decision}'")
    if batch_ids is None:
        if not bucket:
            raise InvalidInput("name the bucket whose pending batches to decide")
        if policy is not None:
            policy.bucket(bucket)
        ids = list(
            session.scalars(
                select(DeletionBatch.id)
                .where(DeletionBatch.bucket == bucket, DeletionBatch.reviewed_status == "pending")
                .order_by(DeletionBatch.id)
            )
        )
    else:
        # Chosen on a screen a while ago: one decided since is skipped when carried out.
        ids = sorted(set(batch_ids))
        if not ids:
            raise InvalidInput("choose at least one batch")
    records = (
        session.scalar(select(func.count()).where(DeletionRecord.deletion_batch_id.in_(ids)))
        if ids
        else 0
    )
    return BulkReviewPlan(decision, tuple(ids), bucket, records or 0)


def review_batches(
    session: Session,
    plan: BulkReviewPlan,
    *,
    reviewer: str,
    reason: str | None = None,
    execute: bool,
) -> BulkReviewResult:
    """Carry out a bulk plan: every batch decided and audited on its own, as one review would.

    A batch decided by someone else since the plan was made is reported and skipped; the
    others still go through. The whole call is refused up front for a bad reviewer or a
    rejection without a reason, before any batch changes.
    """
    check_email(reviewer, "--reviewer")
    if plan.decision == "reject" and not (reason or "").strip():
        raise InvalidInput("rejecting a batch needs a --reason")
    decided: list[ReviewResult] = []
    skipped: list[tuple[int, str]] = []
    for batch_id in plan.batch_ids:
        try:
            decided.append(
                review_batch(
                    session, batch_id, plan.decision, reviewer=reviewer, reason=reason,
                    execute=execute,
                )
            )  # fmt: skip
        except (Conflict, NotFound) as exc:
            session.rollback()
            skipped.append((batch_id, str(exc)))
    return BulkReviewResult(plan.decision, tuple(decided), tuple(skipped), execute)
