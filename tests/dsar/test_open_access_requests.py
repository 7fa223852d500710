"""An open access request protects its evidence: nothing of the subject goes before the export."""

from __future__ import annotations

import json

from sqlalchemy import select

from compliance.store.models import ComplianceProfile, DeletionRecord, DsarRequest
from tests.conftest import DEMO_POLICY, Deployment, ok, ok_stdout
from tests.smtp_server import Inbox, mailing_to
from tests.smtp_server import smtp_inbox as smtp_inbox  # the fixture

OFFICER = "dpo@example.com"
SUPPORT = "support@example.com"


def ask(d: Deployment, kind: str, subject: str) -> str:
    result = d.run(
        "--json", "submit-dsar", "--kind", kind, "--subject-id", subject,
        "--requested-by", SUPPORT, "--execute",
    )  # fmt: skip
    ok(result)
    reference = json.loads(result.stdout)["reference"]
    ok(d.run("review-dsar", reference, "--approve", "--reviewer", OFFICER, "--execute"))
    return reference


def test_retention_and_apply_wait_for_the_access_export(
    demo: Deployment, smtp_inbox: Inbox
) -> None:
    demo.write_policy(
        mailing_to(smtp_inbox, DEMO_POLICY)
        + '\n[retention.activity]\ntable = "activity_logs"\ntimestamp = "created_at"\ndays = 0\n'
    )
    ok(demo.run("create-deletion-records", "--bucket", "closed_accounts", "--execute"))
    out = ok_stdout(
        demo.run("--json", "create-deletion-batches", "--bucket", "closed_accounts", "--execute")
    )
    for batch_id in json.loads(out)["batch_ids"]:
        ok(demo.run("review-batch", str(batch_id), "--accept", "--reviewer", OFFICER, "--execute"))
    with demo.session() as s:
        subject = s.scalars(
            select(ComplianceProfile.subject_id).join(DeletionRecord.profile)
        ).first()
    ask(demo, "access", subject)
    mine = f"user_id = {int(subject)}"
    activity = len(demo.app_rows("activity_logs", mine))
    user = demo.app_rows("users", f"id = {int(subject)}")

    dry = ok(demo.run("apply-deletions"))
    assert "  1 waiting: their subject has an open access request" in dry
    ok(demo.run("apply-deletions", "--execute"))
    ok(demo.run("retention-cleanup", "--category", "activity", "--execute"))
    assert demo.app_rows("users", f"id = {int(subject)}") == user
    assert len(demo.app_rows("activity_logs", mine)) == activity > 0
    assert len(demo.app_rows("activity_logs")) == activity  # everyone else's went

    # The export is built from intact data, and its link sent: until then the subject waits.
    ok(demo.run("process-dsar-requests", "--execute"))
    with demo.session() as s:
        request = s.scalars(select(DsarRequest)).one()
    assert request.status == "completed" and request.export_bytes and smtp_inbox.messages
    ok(demo.run("apply-deletions", "--execute"))
    ok(demo.run("retention-cleanup", "--category", "activity", "--execute"))
    assert demo.app_rows("users", f"id = {int(subject)}")[0]["full_name"] is None
    assert demo.app_rows("activity_logs") == []


def test_an_erasure_waits_for_an_open_access_request(demo: Deployment) -> None:
    access = ask(demo, "access", "21")
    erasure = ask(demo, "erasure", "21")
    with demo.session() as s:
        # The erasure is processed first: it must still wait for the export.
        s.execute(
            DsarRequest.__table__.update()
            .where(DsarRequest.reference == access)
            .values(status="pending")
        )
        s.commit()
    ok(demo.run("process-dsar-requests", "--execute"))
    with demo.session() as s:
        waiting = s.scalars(select(DsarRequest).where(DsarRequest.reference == erasure)).one()
        assert waiting.deletion_record_id is None
        assert "erasure waits for its export" in waiting.last_error
        assert s.scalars(select(DeletionRecord)).all() == []
