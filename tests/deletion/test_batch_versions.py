"""A decision acts on the batch its reviewer saw, or on nothing (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from compliance.deletion.exclusions import exclude_records
from compliance.deletion.holds import place_hold, plan_place_hold
from compliance.deletion.review import batch_target, plan_bulk_review, review_batch, review_batches
from compliance.errors import Conflict
from compliance.store.models import AuditEvent, DeletionRecord
from tests.conftest import DPO, Deployment
from tests.dashboard.conftest import pending_batch, queue  # noqa: F401


def first_record(d: Deployment, batch_id: int) -> tuple[int, str]:
    from compliance.store.models import ComplianceProfile

    with d.session() as s:
        row = s.execute(
            select(DeletionRecord.id, ComplianceProfile.subject_id)
            .join(ComplianceProfile)
            .where(DeletionRecord.deletion_batch_id == batch_id)
            .order_by(DeletionRecord.id)
        ).first()
    assert row is not None
    return row[0], row[1]


def decisions(d: Deployment) -> int:
    with d.session() as s:
        return (
            s.scalar(select(func.count()).where(AuditEvent.action.like("deletion_batch.%ed"))) or 0
        )


def test_the_target_names_batch_bucket_and_record_count(queue: Deployment) -> None:  # noqa: F811
    batch_id = pending_batch(queue)
    with queue.session() as s:
        target = batch_target(s, batch_id, policy=queue.policy())
    assert (target.batch_id, target.bucket, target.records) == (batch_id, "closed_accounts", 5)
    assert target.label == f"batch {batch_id} (closed_accounts, 5 records)"
    assert target.plan_hash and target.version.startswith(f"5.0.0.{target.plan_hash[:8]}.")


def test_an_acceptance_after_an_exclusion_the_reviewer_did_not_see_is_refused(
    queue: Deployment,  # noqa: F811
) -> None:
    policy = queue.policy()
    batch_id = pending_batch(queue)
    with queue.session() as s:
        seen = batch_target(s, batch_id, policy=policy).version
    record_id, _ = first_record(queue, batch_id)
    with queue.session() as s:
        exclude_records(s, batch_id, {record_id: "Customer in a dispute"}, actor=DPO)
    before = decisions(queue)

    with queue.session() as s, pytest.raises(Conflict) as refused:
        review_batch(
            s, batch_id, "accept", reviewer=DPO, policy=policy, seen_version=seen, execute=True
        )
    assert str(refused.value).startswith(
        f"batch {batch_id} changed since you looked (excluded records 0 → 1); nothing was decided"
    )
    with queue.session() as s:
        assert batch_target(s, batch_id).records == 5
        assert (
            s.scalar(
                select(func.count()).where(
                    DeletionRecord.deletion_batch_id == batch_id,
                    DeletionRecord.accepted_for_deletion.is_(True),
                )
            )
            == 0
        )
    assert decisions(queue) == before

    # Looked at again, the same decision goes through.
    with queue.session() as s:
        fresh = batch_target(s, batch_id, policy=policy).version
        result = review_batch(
            s, batch_id, "accept", reviewer=DPO, policy=policy, seen_version=fresh, execute=True
        )
    assert (result.accepted, result.excluded) == (4, 1)


def test_a_hold_placed_since_the_preview_refuses_the_decision(queue: Deployment) -> None:  # noqa: F811
    policy = queue.policy()
    batch_id = pending_batch(queue)
    with queue.session() as s:
        seen = batch_target(s, batch_id, policy=policy).version
    _, subject = first_record(queue, batch_id)
    with queue.session() as s:
        place_hold(s, plan_place_hold(s, subject_id=subject, reason="Litigation", by=DPO))
    with queue.session() as s, pytest.raises(Conflict, match="records on legal hold 0 → 1"):
        review_batch(
            s, batch_id, "reject", reviewer=DPO, reason="Test accounts", policy=policy,
            seen_version=seen, execute=True,
        )  # fmt: skip


def test_a_bulk_decision_with_one_stale_preview_decides_none_of_the_batches(
    queue: Deployment,  # noqa: F811
) -> None:
    policy = queue.policy()
    with queue.session() as s:
        plan = plan_bulk_review(s, "accept", bucket="closed_accounts")
        seen = {b: batch_target(s, b, policy=policy).version for b in plan.batch_ids[:2]}
    changed = plan.batch_ids[1]
    record_id, _ = first_record(queue, changed)
    with queue.session() as s:
        exclude_records(s, changed, {record_id: "Customer in a dispute"}, actor=DPO)
    before = decisions(queue)
    with queue.session() as s:
        bulk = plan_bulk_review(s, "accept", batch_ids=list(seen))
        with pytest.raises(Conflict, match=f"batch {changed} changed since you looked"):
            review_batches(s, bulk, reviewer=DPO, policy=policy, seen_versions=seen, execute=True)
    assert decisions(queue) == before

    # Without versions (the command line), the bulk decision goes through as before.
    with queue.session() as s:
        done = review_batches(s, bulk, reviewer=DPO, policy=policy, execute=True)
    assert [r.batch_id for r in done.decided] == list(seen)
