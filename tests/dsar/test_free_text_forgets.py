"""Free text forgets: what people typed about a subject goes with the subject's erasure.

Reasons and notes may name the subject; the audit trail is append-only. So an event keeps
a reason's keyed hash, the text sits in free_texts tied to its subjects, and erasing a
subject removes every text tied to them while the chain still verifies.
"""

from __future__ import annotations

import json

from sqlalchemy import select

from compliance.audit.texts import REMOVED
from compliance.deletion.exclusions import exclude_records
from compliance.dsar.desk import add_note, timeline
from compliance.dsar.notices import send_notice
from compliance.reports.review_queue import audit_log
from compliance.store.models import (
    AuditEvent,
    ComplianceProfile,
    DeletionRecord,
    DsarRequest,
    ErasureTask,
    FreeText,
    LegalHold,
)
from compliance.systems.manual_tasks import confirm_task
from tests.conftest import DEMO_POLICY, DPO, SUPPORT_STAFF, Deployment
from tests.dsar.test_personal_data_goes import compliance_dump

#: The erasure request reaches the manual newsletter system: a person confirms it with a note.
POLICY = DEMO_POLICY.replace("\nsystems = []", '\nsystems = ["newsletter"]', 1)
OFFICER = ("--reviewer", "dpo@example.com")


def ok(d: Deployment, *args: str) -> None:
    result = d.run(*args)
    assert result.exit_code == 0, (args, result.output)


def _reference(d: Deployment, subject: str, kind: str) -> str:
    with d.session() as s:
        return s.scalars(
            select(DsarRequest.reference).where(
                DsarRequest.subject_id == subject, DsarRequest.kind == kind
            )
        ).one()


def test_a_subjects_name_and_email_typed_everywhere_are_gone_after_their_erasure(
    demo: Deployment,
) -> None:
    assert POLICY != DEMO_POLICY
    demo.write_policy(POLICY)
    ok(demo, "create-deletion-records", "--bucket", "closed_accounts", "--execute")
    ok(demo, "create-deletion-batches", "--bucket", "closed_accounts", "--execute")
    with demo.session() as s:
        record_id, subject = s.execute(
            select(DeletionRecord.id, ComplianceProfile.subject_id)
            .join(ComplianceProfile)
            .where(DeletionRecord.deletion_batch_id == 1)
            .order_by(DeletionRecord.id)
            .limit(1)
        ).one()
    user = demo.app_rows("users", f"id = {subject}")[0]
    email, name = user["email"], user["full_name"]
    about = f"{name} <{email}>"

    # A batch: the subject's record excluded with a note, the batch rejected with a reason.
    ok(demo, "review-batch", "1", "--accept", *OFFICER, "--exclude", f"{record_id}:{about}")
    with demo.session() as s:
        exclude_records(s, 1, {record_id: f"kept: {about}"}, actor=DPO)
    ok(demo, "review-batch", "1", "--reject", *OFFICER, "--reason", f"no, {about}", "--execute")
    # A legal hold, placed and lifted, each with a reason.
    ok(demo, "hold", "add", "--subject-id", subject, "--reason", f"court case of {about}",
       "--by", "dpo@example.com", "--execute")  # fmt: skip
    with demo.session() as s:
        hold_id = s.scalars(select(LegalHold.id)).one()
    ok(demo, "hold", "remove", str(hold_id), "--reason", f"settled for {about}",
       "--by", "dpo@example.com", "--execute")  # fmt: skip
    # An access request refused with a reason, its identity note naming the subject.
    ok(demo, "submit-dsar", "--kind", "access", "--subject-id", subject, "--identity-check",
       f"{name} showed a passport", "--requested-by", SUPPORT_STAFF.email, "--execute")  # fmt: skip
    access = _reference(demo, subject, "access")
    ok(demo, "review-dsar", access, "--reject", *OFFICER, "--reason", f"{about} asked twice",
       "--execute")  # fmt: skip
    # The erasure request: by email, a staff note, an extension and its notice, approval.
    ok(demo, "submit-dsar", "--kind", "erasure", "--email", email, "--identity-check",
       f"called {name} back", "--requested-by", "support@example.com", "--execute")  # fmt: skip
    erasure = _reference(demo, subject, "erasure")
    with demo.session() as s:
        add_note(s, erasure, author=SUPPORT_STAFF, body=f"{name} phoned again from {email}")
    ok(demo, "extend-dsar", erasure, "--months", "1", "--reason", f"{about}'s data is spread",
       "--by", "dpo@example.com", "--execute")  # fmt: skip
    with demo.session() as s:
        send_notice(s, demo.policy(), erasure, "extension", actor=DPO, reason=f"Dear {name}")
        before = {e.action: e.details for e in timeline(s, access)}
    assert before["dsar.rejected"]["reason"] == f"{about} asked twice", "shown while it exists"
    ok(demo, "review-dsar", erasure, "--approve", *OFFICER, "--reason", f"verified {about}",
       "--execute")  # fmt: skip

    # Erased: accepted under the approval, applied, the manual task confirmed, completed.
    ok(demo, "process-dsar-requests", "--execute")
    ok(demo, "apply-deletions", "--execute")
    with demo.session() as s:
        (task_id,) = s.scalars(select(ErasureTask.id).where(ErasureTask.status != "done"))
        confirm_task(s, task_id, actor=DPO, note=f"removed {about}", execute=True)
    ok(demo, "process-dsar-requests", "--execute")

    with demo.session() as s:
        request = s.scalars(select(DsarRequest).where(DsarRequest.reference == erasure)).one()
        assert request.status == "completed"
        assert (request.subject_email, request.identity_check) == (None, None)
        assert not s.scalars(select(FreeText)).all(), "every text was tied to the subject"
        after = {e.action: e.details for e in timeline(s, access)}
        actions = [e.action for e in s.scalars(select(AuditEvent))]
        assert "deletion_batch.rejected" in actions, actions
        shown = audit_log(s, action="deletion_batch.rejected").frame["details"].iloc[0]
        chained = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "dsar.rejected")
        ).one()  # fmt: skip
    assert after["dsar.rejected"]["reason"] == REMOVED
    assert json.loads(shown)["reason"] == REMOVED
    assert chained.details["reason_hash"].startswith("hmac-sha256:"), "the keyed hash stays"
    dump = compliance_dump(demo)
    for secret in (email, name):
        assert secret not in dump, secret
    assert subject in dump and erasure in dump and access in dump, "ids and references stay"
    verified = demo.run("verify-audit-log")
    assert verified.exit_code == 0, verified.output
