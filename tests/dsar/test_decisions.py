"""Decisions through the library, on rows made by the factories: fast, no demo, no CLI.

The CLI scenarios prove the commands; these prove the rules each command leans on, on both
databases, in a fraction of the time.
"""

from __future__ import annotations

from functools import partial

import pytest
from sqlalchemy import select

from compliance.deletion.review import review_batch
from compliance.dsar.decisions import extend_dsar, retry_dsar, review_dsar
from compliance.errors import Conflict, InvalidInput, PermissionDenied
from compliance.store.models import AuditEvent, DeletionBatch, DeletionRecord, DsarRequest
from compliance.store.queries import record_in
from compliance.store.states import BatchStatus, DsarStatus, RecordState
from tests import factories as make
from tests.conftest import DPO, SUPPORT_STAFF, Deployment, person


def _states(d: Deployment, batch_id: int) -> dict[RecordState, int]:
    with d.session() as s:
        return {
            state: n
            for state in RecordState
            if (n := len(s.scalars(select(DeletionRecord.id).where(
                DeletionRecord.deletion_batch_id == batch_id, record_in(state))).all()))
        }  # fmt: skip


def test_a_dry_run_review_changes_nothing_and_counts_what_the_real_one_then_does(
    deployment: Deployment,
) -> None:
    with deployment.session() as s:
        batch_id = make.batch(s, records=5).id
        s.commit()
        preview = review_batch(s, batch_id, "accept", reviewer=DPO, execute=False)
    assert _states(deployment, batch_id) == {RecordState.AWAITING_REVIEW: 5}
    with deployment.session() as s:
        done = review_batch(s, batch_id, "accept", reviewer=DPO, execute=True)
    assert (preview.accepted, preview.excluded, preview.executed) == (5, 0, False)
    assert (done.accepted, done.excluded, done.executed) == (5, 0, True)
    assert _states(deployment, batch_id) == {RecordState.PENDING_APPLY: 5}


def test_only_an_officer_decides_once_and_a_rejection_keeps_every_record_with_its_reason(
    deployment: Deployment,
) -> None:
    with deployment.session() as s:
        batch_id = make.batch(s, records=3).id
        s.commit()
        with pytest.raises(PermissionDenied):
            review_batch(s, batch_id, "accept", reviewer=SUPPORT_STAFF, execute=True)
        with pytest.raises(InvalidInput) as no_reason:
            review_batch(s, batch_id, "reject", reviewer=DPO, reason="  ", execute=True)
        assert no_reason.value.field == "reason"
        review_batch(s, batch_id, "reject", reviewer=DPO, reason="too broad", execute=True)
        other = person("dpo2@example.com", roles=("compliance_officer",))
        with pytest.raises(Conflict, match="already"):
            review_batch(s, batch_id, "accept", reviewer=other, execute=True)
    with deployment.session() as s:
        batch = s.get(DeletionBatch, batch_id)
        assert batch is not None
        assert (batch.reviewed_status, batch.reviewed_reason) == (BatchStatus.REJECTED, "too broad")
    assert _states(deployment, batch_id) == {RecordState.EXCLUDED: 3}


def test_a_request_is_extended_by_two_months_at_most_and_a_dry_run_extends_nothing(
    deployment: Deployment,
) -> None:
    policy = deployment.policy()
    with deployment.session() as s:
        reference = make.dsar_request(s).reference
        s.commit()
        due = s.scalar(select(DsarRequest.due_at))
        preview = extend_dsar(
            s, reference, policy=policy, months=2, reason="complex", actor=DPO, execute=False
        )
        assert preview.extended_due_at is not None and preview.extended_due_at > due
    with deployment.session() as s:
        assert s.scalar(select(DsarRequest.extension_months)) == 0
        extend = partial(extend_dsar, s, reference, policy=policy, actor=DPO, execute=True)
        extend(months=1, reason="complex")
        with pytest.raises(Conflict, match="later than gdpr allows: 2026-06-02 at the latest"):
            extend(months=2, reason="more")
        extend(months=1, reason="still complex")
        assert s.scalar(select(DsarRequest.extension_months)) == 2
        actions = list(s.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
    assert actions == ["dsar.extended", "dsar.extended"]


def test_only_a_failed_request_is_retried_and_an_approved_one_is_not_reviewed_again(
    deployment: Deployment,
) -> None:
    with deployment.session() as s:
        failed = make.dsar_request(s, status=DsarStatus.FAILED).reference
        approved = make.dsar_request(s, status=DsarStatus.APPROVED, subject_id="22").reference
        s.commit()
        with pytest.raises(Conflict, match="only failed requests"):
            retry_dsar(s, approved, actor=DPO, execute=True)
        with pytest.raises(Conflict, match="already approved"):
            review_dsar(s, approved, "approve", reviewer=DPO, four_eyes=False, execute=True)
        with pytest.raises(PermissionDenied):
            retry_dsar(s, failed, actor=SUPPORT_STAFF, execute=True)
        assert retry_dsar(s, failed, actor=DPO, execute=True).status == DsarStatus.APPROVED
