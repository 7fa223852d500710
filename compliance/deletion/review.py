"""Reviewing deletion batches: an officer accepts one (excluding records, each with a reason)
or rejects it, or decides several at once; each decision is planned first and carried out
exactly as planned, against the batch and the plan the officer saw."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    func,
    select,
    update,
)
from sqlalchemy.orm import Session

from compliance.audit.chain import record_event
from compliance.audit.texts import batch_subjects, text_details
from compliance.deletion.holds import held_profiles
from compliance.deletion.plans import plan_document, plan_hash, store_plan
from compliance.errors import Conflict, InvalidInput, NotFound
from compliance.free_text import free_text
from compliance.policy.model import Policy
from compliance.roles import COMPLIANCE_OFFICER, Identity, require
from compliance.store.models import (
    DeletionBatch,
    DeletionRecord,
    utcnow,
)
from compliance.store.queries import batch_pending, record_in
from compliance.store.sql import rows_changed
from compliance.store.states import BatchStatus, RecordState, can_move


@dataclass(frozen=True)
class ReviewResult:
    batch_id: int
    bucket: str
    decision: str
    accepted: int
    excluded: int
    rejected: int
    executed: bool


def get_batch(session: Session, batch_id: int, *, lock: bool = False) -> DeletionBatch:
    batch = session.get(DeletionBatch, batch_id, with_for_update=lock, populate_existing=lock)
    if batch is None:
        raise NotFound(f"no deletion batch with id {batch_id}")
    return batch


def already_reviewed(batch: DeletionBatch) -> Conflict:
    when = batch.reviewed_at.strftime("%Y-%m-%d %H:%M UTC") if batch.reviewed_at else "earlier"
    return Conflict(
        f"batch {batch.id} was already {batch.reviewed_status} by {batch.reviewed_by} at {when}"
    )


@dataclass(frozen=True)
class BatchTarget:
    """What a decision on a batch acts on, as its impact preview showed it.

    ``version`` names it in one token: the counts a person reads, the erasure plan's hash
    prefix and a hash over the record ids, exclusions, holds and the whole plan hash. A
    decision carrying the version its reviewer saw is refused once any of these changed.
    """

    batch_id: int
    bucket: str
    records: int
    excluded: int
    held: int
    plan_hash: str | None
    version: str

    @property
    def label(self) -> str:
        """How a dialog names the target: batch, bucket and record count."""
        kept = f", {self.excluded} excluded" if self.excluded else ""
        return f"batch {self.batch_id} ({self.bucket}, {self.records} records{kept})"


def batch_target(session: Session, batch_id: int, *, policy: Policy | None = None) -> BatchTarget:
    """The batch as a decision would find it now (one indexed read of its records)."""
    batch = get_batch(session, batch_id)
    rows = session.execute(
        select(
            DeletionRecord.id,
            record_in(RecordState.EXCLUDED).label("excluded"),
            DeletionRecord.compliance_profile_id,
        )
        .where(DeletionRecord.deletion_batch_id == batch_id)
        .order_by(DeletionRecord.id)
    ).all()
    held_ids = held_profiles(session, [r.compliance_profile_id for r in rows])
    excluded = [r.id for r in rows if r.excluded]
    held = [r.id for r in rows if r.compliance_profile_id in held_ids]
    plan = plan_hash(plan_document(policy, batch.bucket)) if policy is not None else None
    content = json.dumps(
        [batch.id, batch.bucket, [r.id for r in rows], excluded, held, plan],
        separators=(",", ":"),
    )
    digest = hashlib.sha256(content.encode()).hexdigest()[:16]
    version = f"{len(rows)}.{len(excluded)}.{len(held)}.{(plan or '-')[:8]}.{digest}"
    return BatchTarget(batch.id, batch.bucket, len(rows), len(excluded), len(held), plan, version)


def _what_changed(seen: str, now: BatchTarget) -> str:
    """The difference between two versions in words, as far as the tokens tell it."""
    parts = seen.split(".")
    if len(parts) != 5:
        return "the preview's version is not one this desk made"
    said: list[str] = []
    for (before, after), what in zip(
        zip(parts[:3], (now.records, now.excluded, now.held), strict=True),
        ("records", "excluded records", "records on legal hold"),
        strict=True,
    ):
        if before != str(after):
            said.append(f"{what} {before} → {after}")
    if parts[3] != (now.plan_hash or "-")[:8]:
        said.append("the bucket's erasure plan in the policy changed")
    return "; ".join(said) or "other records are in it now"


def check_unchanged(
    session: Session, batch_id: int, seen_version: str, *, policy: Policy | None = None
) -> BatchTarget:
    """The batch's target now, or a Conflict when it is no longer the one the reviewer saw."""
    now = batch_target(session, batch_id, policy=policy)
    if now.version != seen_version:
        raise Conflict(
            f"batch {batch_id} changed since you looked ({_what_changed(seen_version, now)}); "
            "nothing was decided. Look at it again, then decide."
        )
    return now


def explained_exclusions(exclude: Mapping[int, str]) -> dict[int, str]:
    """The exclusions with their notes trimmed, or InvalidInput for one that has no note.

    An excluded record is a subject the officer chose to keep while erasing the rest: the
    evidence must say why, whichever screen or command the choice came from.
    """
    notes: dict[int, str] = {}
    for rid, note in sorted(exclude.items()):
        text = free_text(note, field="exclude")
        if text is None:
            raise InvalidInput(
                f"{{field}}: record {rid} needs a note saying why it is kept", field="exclude"
            )
        notes[rid] = text
    return notes


def check_exclusions(session: Session, batch: DeletionBatch, exclude: Mapping[int, str]) -> None:
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


def mark_excluded(session: Session, exclude: Mapping[int, str], now: datetime) -> None:
    for record_id, note in exclude.items():
        session.execute(
            update(DeletionRecord)
            .where(DeletionRecord.id == record_id)
            .values(
                accepted_for_deletion=False,
                is_manually_reviewed=True,
                review_note=note,
                updated_at=now,
            )
        )


def review_batch(
    session: Session,
    batch_id: int,
    decision: str,
    *,
    reviewer: Identity,
    reason: str | None = None,
    exclude: Mapping[int, str] | None = None,
    execute: bool,
    now: datetime | None = None,
    policy: Policy | None = None,
    seen_version: str | None = None,
) -> ReviewResult:
    """Accept or reject a pending batch. The decision is final: a second review is refused.

    Given the ``policy``, an acceptance also stores the bucket's erasure plan as it stands
    (the one the impact preview showed), so apply-deletions never erases more than that.
    Given ``seen_version`` (``batch_target(...).version`` of the preview the reviewer saw,
    with the same ``policy``), a batch that has changed since is refused with a Conflict.
    """
    checked = check_decision(decision, reviewer, reason, exclude)
    plan = plan_review(session, batch_id, checked, seen_version=seen_version, policy=policy)
    if not execute:
        session.rollback()
        return plan.result(executed=False)
    carry_out_review(session, plan, now=now or utcnow(), policy=policy)
    return plan.result(executed=True)


@dataclass(frozen=True)
class Decision:
    """A reviewer's decision once checked: input that is refused never reaches the batch."""

    status: BatchStatus
    by: str
    reason: str | None
    exclude: dict[int, str]


def check_decision(
    decision: str, reviewer: Identity, reason: str | None, exclude: Mapping[int, str] | None
) -> Decision:
    """Refuse a bad decision before any batch is read, in the order a reviewer fixes them."""
    if decision not in ("accept", "reject"):
        raise InvalidInput(f"decision must be accept or reject, got '{decision}'")
    by = require(reviewer, COMPLIANCE_OFFICER, to="review deletion batches")
    reason = free_text(reason, field="reason")
    if decision == "reject" and not reason:
        raise InvalidInput("rejecting a batch needs a {field}", field="reason")
    if decision == "reject" and exclude:
        raise InvalidInput(
            "{field} only applies when accepting; a rejection keeps every record", field="exclude"
        )
    excluded = explained_exclusions(exclude or {})
    status = BatchStatus.ACCEPTED if decision == "accept" else BatchStatus.REJECTED
    return Decision(status, by, reason, excluded)


@dataclass(frozen=True)
class ReviewPlan:
    """One decision on one batch, counted before anything changes; the dry run shows it."""

    batch_id: int
    bucket: str
    decision: Decision
    accepted: int
    excluded: int
    rejected: int

    def result(self, *, executed: bool) -> ReviewResult:
        return ReviewResult(
            self.batch_id, self.bucket, self.decision.status, self.accepted, self.excluded,
            self.rejected, executed,
        )  # fmt: skip


def plan_review(
    session: Session,
    batch_id: int,
    decision: Decision,
    *,
    seen_version: str | None = None,
    policy: Policy | None = None,
) -> ReviewPlan:
    """Count what the decision would accept, exclude and reject, if the batch is still open
    and (given ``seen_version``) still the batch the reviewer saw."""
    # Locked when a version is checked: an exclusion made meanwhile waits for this decision.
    batch = get_batch(session, batch_id, lock=seen_version is not None)
    if not can_move(BatchStatus(batch.reviewed_status), decision.status):
        raise already_reviewed(batch)
    if seen_version is not None:
        check_unchanged(session, batch_id, seen_version, policy=policy)
    check_exclusions(session, batch, decision.exclude)
    counts = _review_counts(session, batch_id, decision.status, decision.exclude)
    return ReviewPlan(batch_id, batch.bucket, decision, *counts)


def _review_counts(
    session: Session, batch_id: int, status: BatchStatus, exclude: Mapping[int, str]
) -> tuple[int, int, int]:
    """Accepted, excluded and rejected records, counting earlier exclusions only once."""
    counts = dict(
        session.execute(
            select(DeletionRecord.accepted_for_deletion, func.count())
            .where(DeletionRecord.deletion_batch_id == batch_id)
            .group_by(DeletionRecord.accepted_for_deletion)
        ).all()
    )
    total = sum(counts.values())
    if status == BatchStatus.REJECTED:
        return 0, 0, total
    excluded = len(set(exclude)) + counts.get(False, 0)
    # An exclusion in the same call may name a record already excluded earlier.
    if exclude:
        overlap = session.scalar(
            select(func.count()).where(
                DeletionRecord.id.in_(list(exclude)),
                record_in(RecordState.EXCLUDED),
            )
        )
        excluded -= overlap or 0
    return total - excluded, excluded, 0


def carry_out_review(
    session: Session, plan: ReviewPlan, *, now: datetime, policy: Policy | None = None
) -> None:
    """Record the planned decision, unless someone decided the batch since it was planned."""
    accepted_plan = None
    if plan.decision.status == BatchStatus.ACCEPTED and policy is not None:
        accepted_plan = store_plan(session, plan_document(policy, plan.bucket))
    # Compare-and-set: if someone decided since we read the batch, nothing changes.
    claimed = rows_changed(
        session.execute(
            update(DeletionBatch)
            .where(DeletionBatch.id == plan.batch_id, batch_pending)
            .values(
                reviewed_status=plan.decision.status,
                reviewed_by=plan.decision.by,
                reviewed_at=now,
                reviewed_reason=plan.decision.reason,
                accepted_plan_hash=accepted_plan,
                updated_at=now,
            )
        )
    )
    if claimed != 1:
        session.rollback()
        raise already_reviewed(get_batch(session, plan.batch_id))
    mark_excluded(session, plan.decision.exclude, now)
    session.execute(
        update(DeletionRecord)
        .where(
            DeletionRecord.deletion_batch_id == plan.batch_id,
            record_in(RecordState.AWAITING_REVIEW),
        )
        .values(accepted_for_deletion=plan.decision.status == BatchStatus.ACCEPTED, updated_at=now)
    )
    _audit_review(session, plan, accepted_plan)
    session.commit()


def _audit_review(session: Session, plan: ReviewPlan, accepted_plan: str | None) -> None:
    """The decision's audit event carries the counts the reviewer saw and the plan's hash."""
    record_event(
        session,
        actor=plan.decision.by,
        action=f"deletion_batch.{plan.decision.status}",
        target_type="deletion_batch",
        target_id=plan.batch_id,
        details={
            "bucket": plan.bucket,
            BatchStatus.ACCEPTED: plan.accepted,
            RecordState.EXCLUDED: plan.excluded,
            BatchStatus.REJECTED: plan.rejected,
            "excluded_record_ids": sorted(plan.decision.exclude),
            **text_details(
                session,
                "reason",
                plan.decision.reason,
                subjects=batch_subjects(session, plan.batch_id),
            ),
            **({"plan_hash": accepted_plan} if accepted_plan else {}),
        },
    )


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
                .where(
                    DeletionBatch.bucket == bucket,
                    DeletionBatch.reviewed_status == BatchStatus.PENDING,
                )
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
    reviewer: Identity,
    reason: str | None = None,
    execute: bool,
    policy: Policy | None = None,
    seen_versions: Mapping[int, str] | None = None,
) -> BulkReviewResult:
    """Carry out a bulk plan: every batch decided and audited on its own, as one review would.

    A batch decided by someone else since the plan was made is reported and skipped; the
    others still go through. The whole call is refused up front for a bad reviewer or a
    rejection without a reason, before any batch changes, and (given ``seen_versions``, per
    batch the version its preview showed) when a still pending batch changed since.
    """
    check_decision(plan.decision, reviewer, reason, None)
    seen_versions = seen_versions or {}
    for batch_id in plan.batch_ids:
        seen = seen_versions.get(batch_id)
        if seen is None:
            continue
        try:
            pending = get_batch(session, batch_id).reviewed_status == BatchStatus.PENDING
        except NotFound:
            continue  # reported as skipped below
        if pending:
            check_unchanged(session, batch_id, seen, policy=policy)
    session.rollback()
    decided: list[ReviewResult] = []
    skipped: list[tuple[int, str]] = []
    for batch_id in plan.batch_ids:
        try:
            decided.append(
                review_batch(
                    session, batch_id, plan.decision, reviewer=reviewer, reason=reason,
                    execute=execute, policy=policy, seen_version=seen_versions.get(batch_id),
                )
            )  # fmt: skip
        except (Conflict, NotFound) as exc:
            session.rollback()
            skipped.append((batch_id, str(exc)))
    return BulkReviewResult(plan.decision, tuple(decided), tuple(skipped), execute)
