"""Deciding several batches or DSAR requests at once: each decided and audited on its own."""

from __future__ import annotations

import json

from sqlalchemy import select

from compliance.deletion.review import plan_bulk_review, review_batch, review_batches
from compliance.dsar.decisions import review_dsar, review_dsars
from compliance.dsar.requests import get_dsar
from compliance.roles import Identity, identify
from compliance.store.models import AuditEvent, DeletionBatch, DeletionRecord
from tests.conftest import Deployment, person
from tests.dashboard.conftest import OFFICER, queue  # noqa: F401


def officer(d: Deployment) -> Identity:
    return identify(d.policy(), OFFICER)


def pending_ids(d: Deployment, bucket: str) -> list[int]:
    with d.session() as s:
        return list(
            s.scalars(
                select(DeletionBatch.id)
                .where(DeletionBatch.bucket == bucket, DeletionBatch.reviewed_status == "pending")
                .order_by(DeletionBatch.id)
            )
        )


def test_all_pending_batches_of_a_bucket_are_decided_one_by_one_from_the_cli(
    queue: Deployment,  # noqa: F811
) -> None:
    batches = pending_ids(queue, "closed_accounts")
    assert len(batches) > 2
    dry = queue.run(
        "review-batch", "--all-pending", "--bucket", "closed_accounts", "--accept",
        "--reviewer", OFFICER,
    )  # fmt: skip
    assert dry.exit_code == 0, dry.output
    assert "[DRY RUN]" in dry.output and f"0 of {len(batches)}" not in dry.output
    assert pending_ids(queue, "closed_accounts") == batches  # a dry run decides nothing

    done = queue.run(
        "--json", "review-batch", "--all-pending", "--bucket", "closed_accounts", "--accept",
        "--reviewer", OFFICER, "--execute",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert [r["batch_id"] for r in summary["decided"]] == batches
    assert pending_ids(queue, "closed_accounts") == []
    with queue.session() as s:
        events = s.scalars(
            select(AuditEvent.target_id).where(AuditEvent.action == "deletion_batch.accepted")
        ).all()
        undecided = s.scalars(
            select(DeletionRecord.id).where(
                DeletionRecord.deletion_batch_id.in_(batches),
                DeletionRecord.accepted_for_deletion.is_not(True),
            )
        ).all()
    assert sorted(int(e) for e in events if int(e) in batches) == batches  # one event each
    assert undecided == []


def test_a_batch_decided_meanwhile_is_reported_and_skipped(queue: Deployment) -> None:  # noqa: F811
    batches = pending_ids(queue, "closed_accounts")
    with queue.session() as s:
        plan = plan_bulk_review(s, "reject", bucket="closed_accounts")
    with queue.session() as s:  # a colleague accepts one after the plan was made
        review_batch(
            s,
            batches[1],
            "accept",
            reviewer=person("colleague@example.com", roles=("compliance_officer",)),
            execute=True,
        )
    with queue.session() as s:
        result = review_batches(
            s, plan, reviewer=officer(queue), reason="Rule matched test accounts", execute=True
        )

    assert [r.batch_id for r in result.decided] == [b for b in batches if b != batches[1]]
    ((skipped, why),) = result.skipped
    assert skipped == batches[1] and "already accepted by colleague@example.com" in why
    with queue.session() as s:
        statuses = dict(s.execute(select(DeletionBatch.id, DeletionBatch.reviewed_status)).all())
    assert statuses[batches[1]] == "accepted"
    assert {statuses[b] for b in batches if b != batches[1]} == {"rejected"}


def test_bulk_review_refuses_bad_input_before_changing_anything(queue: Deployment) -> None:  # noqa: F811
    batches = pending_ids(queue, "closed_accounts")
    no_reason = queue.run(
        "review-batch", "--all-pending", "--bucket", "closed_accounts", "--reject",
        "--reviewer", OFFICER, "--execute",
    )  # fmt: skip
    unknown = queue.run(
        "review-batch", "--all-pending", "--bucket", "nope", "--accept", "--reviewer", OFFICER,
    )  # fmt: skip
    no_bucket = queue.run("review-batch", "--all-pending", "--accept", "--reviewer", OFFICER)
    assert (no_reason.exit_code, unknown.exit_code, no_bucket.exit_code) == (2, 2, 2)
    assert "reason" in no_reason.output and "unknown bucket 'nope'" in unknown.output
    assert pending_ids(queue, "closed_accounts") == batches


def test_several_dsar_requests_are_approved_at_once_and_one_decided_meanwhile_is_skipped(
    queue: Deployment,  # noqa: F811
) -> None:
    from compliance.reports.dsar_stats import list_dsar_requests

    with queue.session() as s:
        pending = [r.reference for r in list_dsar_requests(s, status="pending", limit=50)]
    assert len(pending) >= 2
    with queue.session() as s:
        review_dsar(
            s,
            pending[0],
            "reject",
            reviewer=person("colleague@example.com", roles=("compliance_officer",)),
            four_eyes=False,
            reason="dup",
            execute=True,
        )
    with queue.session() as s:
        result = review_dsars(
            s, pending, "approve", reviewer=officer(queue), four_eyes=False,
            policy=queue.policy(), execute=True,
        )  # fmt: skip
    assert result.decided == tuple(pending[1:])
    assert [ref for ref, _ in result.skipped] == [pending[0]]
    with queue.session() as s:
        assert [get_dsar(s, ref).status for ref in pending] == ["rejected"] + ["approved"] * (
            len(pending) - 1
        )
