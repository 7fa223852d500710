"""A data subject's access and erasure requests, from submission to completion, on the CLI."""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from click.testing import Result
from sqlalchemy import select

from compliance.audit.chain import verify_chain
from compliance.dsar.delivery import redeem_delivery
from compliance.dsar.processing import process_dsar_requests
from compliance.policy.datamap import DataMap
from compliance.store.models import (
    AuditEvent,
    DeletionBatch,
    DeletionRecord,
    DsarRequest,
    utcnow,
)
from tests.conftest import DEMO_POLICY, Deployment
from tests.smtp_server import Inbox, mailing_to
from tests.smtp_server import smtp_inbox as smtp_inbox  # the fixture

REFERENCE = re.compile(r"DSAR-\d{4}-\d{6}")


def ok(result: Result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def request_row(d: Deployment, reference: str) -> DsarRequest:
    with d.session() as s:
        return s.scalars(select(DsarRequest).where(DsarRequest.reference == reference)).one()


def submit(d: Deployment, kind: str, *who: str) -> str:
    out = ok(
        d.run("--json", "submit-dsar", "--kind", kind, *who, "--requested-by",
              "support@example.com", "--execute")
    )  # fmt: skip
    assert REFERENCE.fullmatch(out["reference"])
    return out["reference"]


def approve(d: Deployment, reference: str) -> None:
    ok(
        d.run("--json", "review-dsar", reference, "--approve", "--reviewer", "dpo@example.com",
              "--execute")
    )  # fmt: skip


def test_an_access_request_goes_from_submission_to_a_one_time_download(
    demo: Deployment, smtp_inbox: Inbox
) -> None:
    # auto_deliver = false: the export is built by the job and sent by support.
    demo.write_policy(mailing_to(smtp_inbox, DEMO_POLICY, auto_deliver=False))
    user = demo.app_rows("users", "id = 42")[0]

    dry = demo.run("submit-dsar", "--kind", "access", "--email", user["email"].upper(),
                   "--requested-by", "support@example.com")  # fmt: skip
    assert dry.exit_code == 0, dry.output
    assert "[DRY RUN] Would log an access request for subject 42" in dry.output
    with demo.session() as s:
        assert s.scalars(select(DsarRequest)).all() == []

    reference = submit(demo, "access", "--email", user["email"])
    assert submit(demo, "access", "--subject-id", "42") == reference  # the open one comes back
    assert request_row(demo, reference).status == "pending"

    approve(demo, reference)
    out = ok(demo.run("--json", "process-dsar-requests", "--execute"))
    assert (out["ready"], out["completed"], smtp_inbox.messages) == ([reference], [], [])

    row = request_row(demo, reference)
    # Built, not delivered: still open, the subject has nothing yet.
    assert row.status == "ready" and row.completed_at is None and row.exported_at is not None
    zip_path = Path(row.export_path)
    assert zip_path == demo.dir / "exports" / f"{reference}.zip"
    content = zip_path.read_bytes()
    assert row.export_sha256 == hashlib.sha256(content).hexdigest()
    assert row.export_bytes == len(content)
    with zipfile.ZipFile(zip_path) as archive:
        document = json.loads(archive.read("data.json"))
    assert [u["id"] for u in document["tables"]["users"]] == [42]
    # The export says which request it answers and when it was decided, with UTC offsets.
    assert document["request"]["reference"] == reference
    assert document["request"]["decision"] == "approved"
    assert document["request"]["received_at"].endswith("+00:00")
    assert document["exported_at"].endswith("+00:00")

    ok(demo.run("--json", "deliver-dsar", reference, "--download-url",
                "https://privacy.example.com/download", "--by", "support@example.com",
                "--execute"))  # fmt: skip
    assert {m["To"] for m in smtp_inbox.messages} == {user["email"]}
    delivered = request_row(demo, reference)
    assert delivered.status == "completed" and delivered.completed_at >= row.exported_at
    link_mail, code_mail = smtp_inbox.bodies()
    token = re.search(r"https://privacy\.example\.com/download\?token=(\S+)", link_mail).group(1)
    otp = re.search(r"code is (\d{6})", code_mail).group(1)
    assert otp not in link_mail and token not in code_mail

    with demo.session() as s:
        download = redeem_delivery(s, token, otp, policy=demo.policy())
    assert download.content == content

    with demo.session() as s:
        assert verify_chain(s).ok
        events = s.scalars(select(AuditEvent)).all()
    actions = {e.action for e in events}
    assert {"dsar.submitted", "dsar.approved", "dsar.export_ready", "dsar.delivery_created",
            "dsar.completed", "dsar.delivery_downloaded"} <= actions  # fmt: skip
    everything = json.dumps([e.details for e in events]) + " ".join(
        e.target_id or "" for e in events
    )
    assert user["email"] not in everything and token not in everything and otp not in everything


def test_approving_an_erasure_is_its_review_and_the_schedule_carries_it_out(
    demo: Deployment,
) -> None:
    invoices_before = demo.checksum("invoices", "payments")
    reference = submit(demo, "erasure", "--subject-id", "7")
    # The dry run shows what approving erases, from the bucket's preview.
    dry = ok(demo.run("--json", "review-dsar", reference, "--approve", "--reviewer",
                      "dpo@example.com"))  # fmt: skip
    impact = {(row["table"], row["action"]): row["rows"] for row in dry["impact"]}
    assert impact[("users", "anonymize")] == 1 and impact[("invoices", "retain")] >= 0
    approve(demo, reference)
    with demo.session() as s:
        approved = s.scalars(select(AuditEvent).where(AuditEvent.action == "dsar.approved")).one()
        plan_hash = request_row(demo, reference).accepted_plan_hash
    assert approved.actor == "dpo@example.com" and approved.details["plan_hash"] == plan_hash

    # Run the shipped schedule's lines, in order: nothing to batch or review by hand.
    ok(demo.run("--json", "process-dsar-requests", "--execute"))
    with demo.session() as s:
        record = s.get(DeletionRecord, request_row(demo, reference).deletion_record_id)
        assert (record.accepted_for_deletion, record.deletion_batch_id) == (True, None)
        assert record.accepted_plan_hash == plan_hash
    assert ok(demo.run("--json", "create-deletion-batches", "--bucket", "dsar_erasure",
                       "--execute"))["records"] == 0  # fmt: skip
    ok(demo.run("--json", "apply-deletions", "--execute"))
    out = ok(demo.run("--json", "process-dsar-requests", "--execute"))
    assert out["completed"] == [reference]
    assert request_row(demo, reference).status == "completed"
    with demo.session() as s:
        assert s.scalars(select(DeletionBatch)).all() == []

    user = demo.app_rows("users", "id = 7")[0]
    assert user["full_name"] is None and user["phone"] is None
    assert demo.app_rows("workflows", "user_id = 7") == []
    assert demo.app_rows("api_tokens", "user_id = 7") == []
    assert demo.checksum("invoices", "payments") == invoices_before


def test_a_policy_widened_after_the_approval_is_refused_not_erased(
    demo: Deployment,
) -> None:
    reference = submit(demo, "erasure", "--subject-id", "10")
    approve(demo, reference)
    ok(demo.run("--json", "process-dsar-requests", "--execute"))
    # Now the policy erases a column the approver's preview did not show.
    demo.write_policy(
        DEMO_POLICY.replace('full_name = "null"', 'full_name = "null", country = "null"')
    )
    assert demo.policy().tables["users"].anonymize.keys() > {"full_name"}
    assert demo.run("apply-deletions", "--execute").exit_code == 1  # refused, not erased
    ok(demo.run("--json", "process-dsar-requests", "--execute"))
    row = request_row(demo, reference)
    assert row.status == "processing" and "policy changed after acceptance" in row.last_error
    assert demo.app_rows("users", "id = 10")[0]["full_name"] is not None


def test_without_review_an_erasure_is_accepted_at_once(demo: Deployment) -> None:
    demo.write_policy(DEMO_POLICY.replace("erasure_review = true", "erasure_review = false"))
    reference = submit(demo, "erasure", "--subject-id", "8")
    approve(demo, reference)
    assert request_row(demo, reference).accepted_plan_hash is None  # no preview, no plan
    ok(demo.run("--json", "process-dsar-requests", "--execute"))
    with demo.session() as s:
        record = s.get(DeletionRecord, request_row(demo, reference).deletion_record_id)
        assert record.accepted_for_deletion is True and record.deletion_batch_id is None
    ok(demo.run("--json", "apply-deletions", "--execute"))
    ok(demo.run("--json", "process-dsar-requests", "--execute"))
    assert request_row(demo, reference).status == "completed"
    assert demo.app_rows("support_tickets", "user_id = 8") == []


def test_bad_intake_is_a_one_line_error_with_exit_2(demo: Deployment) -> None:
    cases = {
        ("--subject-id", "999999"): "no data subject with id '999999'",
        ("--email", "nobody@example.com"): "no data subject with email 'nobody@example.com'",
        ("--email", "not-an-email"): "must be an email address",
    }
    for who, message in cases.items():
        result = demo.run("submit-dsar", "--kind", "access", *who, "--requested-by",
                          "support@example.com", "--execute")  # fmt: skip
        assert result.exit_code == 2, result.output
        assert message in result.stderr and "Traceback" not in result.output
        errors = [line for line in result.stderr.splitlines() if "Error" in line]
        assert errors == [result.stderr.strip().splitlines()[-1]]
    with demo.session() as s:
        assert s.scalars(select(DsarRequest)).all() == []


def test_rejecting_a_request_needs_a_reason_and_happens_once(demo: Deployment) -> None:
    reference = submit(demo, "access", "--subject-id", "3")
    no_reason = demo.run("review-dsar", reference, "--reject", "--reviewer", "dpo@example.com",
                         "--execute")  # fmt: skip
    assert no_reason.exit_code == 2
    assert "Error: rejecting a DSAR request needs a reason (--reason)" in no_reason.stderr
    ok(demo.run("--json", "review-dsar", reference, "--reject", "--reviewer", "dpo@example.com",
                "--reason", "identity not verified", "--execute"))  # fmt: skip
    row = request_row(demo, reference)
    assert (row.status, row.reviewed_by, row.reviewed_reason) == (
        "rejected", "dpo@example.com", "identity not verified")  # fmt: skip
    again = demo.run("review-dsar", reference, "--approve", "--reviewer", "dpo@example.com",
                     "--execute")  # fmt: skip
    assert again.exit_code == 2 and "already rejected by dpo@example.com" in again.stderr
    # A closed request no longer blocks a new one for the same subject.
    assert submit(demo, "access", "--subject-id", "3") != reference


def test_a_failing_export_is_retried_with_backoff_then_fails_and_retry_puts_it_back(
    demo: Deployment,
) -> None:
    reference = submit(demo, "access", "--subject-id", "11")
    approve(demo, reference)
    blocker = demo.dir / "not-a-folder"
    blocker.write_text("a file where the export folder should be")
    blocked = {"COMPLIANCE_EXPORT_DIR": str(blocker)}
    first = demo.run("process-dsar-requests", "--execute", env=blocked)
    assert first.exit_code == 0 and f"{reference} failed an attempt" in first.output
    row = request_row(demo, reference)
    assert (row.status, row.attempts) == ("approved", 1) and row.last_error
    assert timedelta(minutes=4) < row.next_attempt_at - utcnow() <= timedelta(minutes=5)
    # Not before its time: an immediate rerun leaves it alone.
    rerun = demo.run("process-dsar-requests", "--execute", env=blocked)
    assert rerun.exit_code == 0 and "Claimed 0 requests" in rerun.output

    # The clock moves on: attempt 2 after 5 minutes, attempt 3 (the last) 10 minutes later.
    datamap = DataMap(replace(demo.policy(), export_dir=blocker), demo.app_engine)
    later = utcnow() + timedelta(minutes=6)
    with demo.session() as s:
        second = process_dsar_requests(s, datamap, actor="jobs", execute=True, now=later)
        assert reference in second.retrying and not second.failed
        third = process_dsar_requests(
            s, datamap, actor="jobs", execute=True, now=later + timedelta(minutes=11)
        )
        assert reference in third.failed
    row = request_row(demo, reference)
    assert (row.status, row.attempts) == ("failed", 3)

    ok(demo.run("--json", "retry-dsar", reference, "--by", "dpo@example.com", "--execute"))
    assert request_row(demo, reference).status == "approved"
    ok(demo.run("--json", "process-dsar-requests", "--execute"))
    assert request_row(demo, reference).status == "ready"


def test_max_attempts_is_configurable_and_bad_values_are_refused(demo: Deployment) -> None:
    demo.write_policy(DEMO_POLICY.replace("max_attempts = 3", "max_attempts = 1"))
    reference = submit(demo, "access", "--subject-id", "13")
    approve(demo, reference)
    blocker = demo.dir / "not-a-folder"
    blocker.write_text("x")
    failed = demo.run(
        "process-dsar-requests", "--execute", env={"COMPLIANCE_EXPORT_DIR": str(blocker)}
    )
    assert failed.exit_code == 1 and request_row(demo, reference).status == "failed"
    demo.write_policy(DEMO_POLICY.replace("max_attempts = 3", "max_attempts = 0"))
    refused = demo.run("process-dsar-requests")
    assert refused.exit_code == 2 and "dsar.max_attempts" in refused.stderr


def test_extending_a_deadline_needs_a_reason_and_stops_at_two_months(demo: Deployment) -> None:
    reference = submit(demo, "access", "--subject-id", "12")
    row = request_row(demo, reference)
    extend = ("extend-dsar", reference, "--by", "dpo@example.com", "--months")
    ok(demo.run("--json", *extend, "1", "--reason", "many systems", "--execute"))
    extended = request_row(demo, reference)
    assert extended.extension_reason == "many systems"
    assert extended.extended_due_at.month != row.due_at.month
    blank = demo.run(*extend, "1", "--reason", "  ", "--execute")
    assert blank.exit_code == 2
    assert "Error: extending a DSAR deadline needs a reason (--reason)" in blank.stderr
    too_far = demo.run(*extend, "2", "--reason", "more", "--execute")
    assert too_far.exit_code == 2 and "later than gdpr allows" in too_far.stderr
    assert "(already extended by 1 month)" in too_far.stderr
    ok(demo.run("--json", *extend, "1", "--reason", "still more", "--execute"))
    three = demo.run(*extend, "121", "--reason", "x", "--execute")
    assert three.exit_code == 2 and "--months must be from 1 to 120, got 121" in three.stderr


def test_support_exports_a_subject_directly(demo: Deployment, tmp_path: Path) -> None:
    out = ok(demo.run("--json", "export-user-data", "--by", "support@example.com",
                      "--subject-id", "5", "--output",
                      str(tmp_path / "out")))  # fmt: skip
    data = json.loads(Path(out["path"]).read_text())["tables"]
    assert [u["id"] for u in data["users"]] == [5] and "password_hash" not in data["users"][0]
    out = ok(demo.run("--json", "export-user-data", "--by", "support@example.com",
                      "--subject-id", "5", "--format", "csv",
                      "--output", str(tmp_path / "out")))  # fmt: skip
    with zipfile.ZipFile(out["path"]) as archive:
        assert "app_database/users.csv" in archive.namelist()
    missing = demo.run("export-user-data", "--by", "support@example.com", "--subject-id", "999999")
    assert missing.exit_code == 2 and "no data subject" in missing.stderr
    with demo.session() as s:
        takers = s.scalars(
            select(AuditEvent.actor).where(AuditEvent.action == "subject.exported")
        ).all()
    assert takers == ["support@example.com"] * 2, "the person, not the job's account"
