"""One decision per erasure request: approving it is its review, and the schedule erases it.

No ``dsar_erasure`` batch is made or reviewed by hand: process-dsar-requests accepts the
request's deletion record under the approval (and the plan it accepted), apply-deletions
erases it, and the next process-dsar-requests completes the request.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from compliance.deletion.apply import apply_deletions
from compliance.deletion.plans import load_plans, plan_document
from compliance.dsar.decisions import review_dsar, review_dsars
from compliance.dsar.processing import process_dsar_requests
from compliance.dsar.requests import submit_dsar
from compliance.errors import PermissionDenied
from compliance.policy.model import DSAR_ERASURE_BUCKET
from compliance.store.models import AuditEvent, DeletionBatch, DeletionRecord, DsarRequest
from tests.conftest import DEMO_POLICY, DPO, SUPPORT_STAFF, Deployment, person


def logged_erasure(d: Deployment, subject: str, by=SUPPORT_STAFF) -> str:  # type: ignore[no-untyped-def]
    with d.session() as s:
        return submit_dsar(
            s, d.policy(), d.app_engine, kind="erasure", subject_id=subject, requested_by=by,
            execute=True,
        ).reference  # fmt: skip


def request_row(d: Deployment, reference: str) -> DsarRequest:
    with d.session() as s:
        return s.scalars(select(DsarRequest).where(DsarRequest.reference == reference)).one()


def test_the_approval_accepts_the_record_and_apply_deletions_erases_it_with_no_batch(
    demo: Deployment,
) -> None:
    reference = logged_erasure(demo, "15")
    policy = demo.policy()
    with demo.session() as s:
        review_dsar(
            s, reference, "approve", reviewer=DPO, four_eyes=True, policy=policy, execute=True
        )
        approved = request_row(demo, reference)
        # The plan the approver's preview came from, stored like a batch acceptance's.
        plans = load_plans(s, [approved.accepted_plan_hash])
        assert plans[approved.accepted_plan_hash] == plan_document(policy, DSAR_ERASURE_BUCKET)

        first = process_dsar_requests(s, demo.datamap(), actor="cron", execute=True)
        assert first.erasure_scheduled == 1
        record = s.get(DeletionRecord, request_row(demo, reference).deletion_record_id)
        assert (record.accepted_for_deletion, record.deletion_batch_id) == (True, None)
        assert record.accepted_plan_hash == approved.accepted_plan_hash

        erased = apply_deletions(s, demo.datamap(), actor="cron", execute=True)
        assert erased.applied == 1
        done = process_dsar_requests(s, demo.datamap(), actor="cron", execute=True)
        assert done.completed == [reference]
        assert s.scalars(select(DeletionBatch)).all() == []
        events = {
            e.action: e
            for e in s.scalars(select(AuditEvent).where(AuditEvent.target_id == reference))
        }
    assert request_row(demo, reference).status == "completed"
    assert demo.app_rows("users", "id = 15")[0]["full_name"] is None
    assert events["dsar.approved"].actor == DPO.email
    assert events["dsar.approved"].details["erasure_review"] is True
    assert events["dsar.erasure_scheduled"].details["accepted_by"] == DPO.email


def test_bulk_approval_accepts_each_erasure_as_one_approval_does(demo: Deployment) -> None:
    references = [logged_erasure(demo, subject) for subject in ("16", "17")]
    other = person("other.officer@example.com", roles=("compliance_officer",))
    mine = logged_erasure(demo, "18", by=other)  # four eyes: its logger may not approve it
    with demo.session() as s:
        result = review_dsars(
            s, [*references, mine], "approve", reviewer=other, four_eyes=True,
            policy=demo.policy(), execute=True,
        )  # fmt: skip
        assert result.decided == tuple(references)
        assert [ref for ref, _ in result.skipped] == [mine]
        process_dsar_requests(s, demo.datamap(), actor="cron", execute=True)
        assert apply_deletions(s, demo.datamap(), actor="cron", execute=True).applied == 2
        done = process_dsar_requests(s, demo.datamap(), actor="cron", execute=True)
    assert sorted(done.completed) == sorted(references)
    assert request_row(demo, mine).status == "pending"


def test_an_erasure_is_approved_only_with_the_policy_its_plan_comes_from(
    demo: Deployment,
) -> None:
    reference = logged_erasure(demo, "19")
    with demo.session() as s, pytest.raises(TypeError, match="needs the policy"):
        review_dsar(s, reference, "approve", reviewer=DPO, four_eyes=True, execute=True)
    with demo.session() as s, pytest.raises(PermissionDenied):
        review_dsar(
            s, reference, "approve", reviewer=SUPPORT_STAFF, four_eyes=True,
            policy=demo.policy(), execute=True,
        )  # fmt: skip
    assert request_row(demo, reference).status == "pending"


def test_without_erasure_review_the_approval_stores_no_plan(demo: Deployment) -> None:
    demo.write_policy(DEMO_POLICY.replace("erasure_review = true", "erasure_review = false"))
    reference = logged_erasure(demo, "20")
    with demo.session() as s:
        review_dsar(
            s, reference, "approve", reviewer=DPO, four_eyes=True, policy=demo.policy(),
            execute=True,
        )  # fmt: skip
        process_dsar_requests(s, demo.datamap(), actor="cron", execute=True)
        record = s.get(DeletionRecord, request_row(demo, reference).deletion_record_id)
    assert record.accepted_for_deletion is True and record.accepted_plan_hash is None
