"""Actions shown are actions allowed: the desk offers a decision from the rule that refuses
it, and an erasure approval acts only on the target its preview showed."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from compliance.dsar.decisions import erasure_target, review_dsar, review_dsars
from compliance.dsar.desk import request_detail, review_candidates
from compliance.dsar.requests import submit_dsar
from compliance.errors import Conflict, PermissionDenied
from compliance.store.models import AuditEvent, DsarRequest
from tests.conftest import DEMO_POLICY, DPO, SUPPORT_STAFF, Deployment, person

FOUR_EYES = DEMO_POLICY + "\n[review]\nfour_eyes = true\n"
# The same policy with one column fewer in the erasure plan: what approving erases changed.
CHANGED = FOUR_EYES.replace(', phone = "null" }', " }", 1)


def logged(d: Deployment, subject: str, kind: str = "erasure", by=SUPPORT_STAFF) -> str:  # type: ignore[no-untyped-def]
    with d.session() as s:
        return submit_dsar(
            s, d.policy(), d.app_engine, kind=kind, subject_id=subject, requested_by=by,
            identity_method="id_document", identity_check="Passport seen", execute=True,
        ).reference  # fmt: skip


def status(d: Deployment, reference: str) -> str:
    with d.session() as s:
        return s.scalars(select(DsarRequest.status).where(DsarRequest.reference == reference)).one()


def test_the_officer_who_logged_a_request_is_offered_reject_but_never_approve(
    demo: Deployment,
) -> None:
    demo.write_policy(FOUR_EYES)
    assert CHANGED != FOUR_EYES
    mine = logged(demo, "21", kind="access", by=DPO)
    policy = demo.policy()
    with demo.session() as s:
        own = request_detail(s, policy, mine, roles=DPO.roles, viewer=DPO.email)
        colleague = person("dpo2@example.com", policy, roles=("compliance_officer",))
        other = request_detail(s, policy, mine, roles=colleague.roles, viewer=colleague.email)
    assert "approve" not in own.actions and "reject" in own.actions
    assert own.waiting_for is not None and "four eyes" in own.waiting_for
    assert {"approve", "reject"} <= set(other.actions)
    # What is not offered is what the library refuses.
    with demo.session() as s, pytest.raises(PermissionDenied, match="may not approve it too"):
        review_dsar(s, mine, "approve", reviewer=DPO, four_eyes=True, policy=policy, execute=True)
    with demo.session() as s:
        candidates = review_candidates(s, policy, [mine], viewer=DPO.email)
    assert [(c.reference, c.may_approve, c.identity_method) for c in candidates] == [
        (mine, False, "id_document")
    ]
    assert candidates[0].identity_note == "Passport seen"


def test_without_four_eyes_the_author_is_offered_approve(demo: Deployment) -> None:
    demo.write_policy(DEMO_POLICY + "\n[review]\nfour_eyes = false\n")
    mine = logged(demo, "22", kind="access", by=DPO)
    with demo.session() as s:
        own = request_detail(s, demo.policy(), mine, roles=DPO.roles, viewer=DPO.email)
    assert {"approve", "reject"} <= set(own.actions)


def test_an_erasure_approval_whose_plan_changed_since_the_preview_is_refused(
    demo: Deployment,
) -> None:
    demo.write_policy(FOUR_EYES)
    reference = logged(demo, "23")
    with demo.session() as s:
        seen = erasure_target(s, demo.policy(), reference).version
    demo.write_policy(CHANGED)  # someone edits the policy while the dialog is open
    policy = demo.policy()
    with demo.session() as s, pytest.raises(Conflict, match="changed since you looked") as refused:
        review_dsar(
            s, reference, "approve", reviewer=DPO, four_eyes=True, policy=policy,
            seen_version=seen, execute=True,
        )  # fmt: skip
    assert "erasure plan in the policy changed" in str(refused.value)
    assert status(demo, reference) == "pending"
    with demo.session() as s:
        fresh = erasure_target(s, policy, reference).version
        approved = review_dsar(
            s, reference, "approve", reviewer=DPO, four_eyes=True, policy=policy,
            seen_version=fresh, execute=True,
        )  # fmt: skip
    assert approved.status == "approved"


def test_a_bulk_approval_with_one_stale_preview_decides_none(demo: Deployment) -> None:
    demo.write_policy(FOUR_EYES)
    first, second = logged(demo, "24"), logged(demo, "25")
    with demo.session() as s:
        seen = {r: erasure_target(s, demo.policy(), r).version for r in (first, second)}
    demo.write_policy(CHANGED)
    with demo.session() as s, pytest.raises(Conflict, match="changed since you looked"):
        review_dsars(
            s, [first, second], "approve", reviewer=DPO, four_eyes=True, policy=demo.policy(),
            seen_versions=seen, execute=True,
        )  # fmt: skip
    assert (status(demo, first), status(demo, second)) == ("pending", "pending")
    with demo.session() as s:
        approvals = s.scalars(select(AuditEvent).where(AuditEvent.action == "dsar.approved"))
        assert list(approvals) == []
    # Without versions (the command line) the approval goes through as before.
    with demo.session() as s:
        done = review_dsars(
            s, [first, second], "approve", reviewer=DPO, four_eyes=True, policy=demo.policy(),
            execute=True,
        )  # fmt: skip
    assert done.decided == (first, second)
