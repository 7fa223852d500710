"""Legal holds win over every rule: buckets, accepted batches, erasure requests, retention."""

from __future__ import annotations

import json
import threading

import pytest
from sqlalchemy import select, update

from compliance.audit.chain import verify_chain
from compliance.deletion.exclusions import exclude_records
from compliance.deletion.review import get_batch
from compliance.errors import Conflict
from compliance.reports.review_queue import batch_records, list_batches
from compliance.store.models import (
    AuditEvent,
    ComplianceProfile,
    DeletionBatch,
    DeletionRecord,
    DsarRequest,
    LegalHold,
    utcnow,
)
from tests.conftest import DEMO_POLICY, DPO, Deployment, ok, ok_stdout

BUCKET = "closed_accounts"
OFFICER = "dpo@example.com"


def hold(d: Deployment, subject: str, *extra: str) -> int:
    out = json.loads(
        ok_stdout(
            d.run(
                "--json", "hold", "add", "--subject-id", subject, "--reason", "litigation 17",
                "--by", OFFICER, "--execute", *extra,
            )
        )
    )  # fmt: skip
    return int(out["hold"]["id"])


def records_and_batches(d: Deployment) -> list[int]:
    ok(d.run("create-deletion-records", "--bucket", BUCKET, "--execute"))
    out = json.loads(
        ok_stdout(d.run("--json", "create-deletion-batches", "--bucket", BUCKET, "--execute"))
    )
    return list(out["batch_ids"])


def batch_subjects(d: Deployment, batch_id: int) -> dict[int, str]:
    """Record id -> subject key, as the batch page lists them."""
    with d.session() as s:
        frame = batch_records(s, batch_id, limit=500).frame
    return dict(zip(frame["record_id"], frame["subject_id"], strict=True))


def test_placing_a_hold_is_a_dry_run_until_executed_and_is_audited(demo: Deployment) -> None:
    dry = ok(demo.run("hold", "add", "--subject-id", "7", "--reason", "case 1", "--by", OFFICER))
    assert "[DRY RUN] Would place a legal hold on subject 7 (until lifted)" in dry
    with demo.session() as s:
        assert s.scalars(select(LegalHold)).all() == []

    hold_id = hold(demo, "7", "--until", "2099-12-31")
    listed = json.loads(ok_stdout(demo.run("--json", "hold", "list")))["holds"]
    assert [(h["id"], h["subject_id"], h["until"], h["active"]) for h in listed] == [
        (hold_id, "7", "2099-12-31", True)
    ]
    with demo.session() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "legal_hold.placed")).one()
        # The free-text reason stays in legal_holds; the trail names the profile only.
        assert event.actor == OFFICER and "litigation" not in json.dumps(event.details)

    removed = ok(
        demo.run(
            "hold", "remove", str(hold_id), "--reason", "case closed", "--by", OFFICER,
            "--execute",
        )
    )  # fmt: skip
    assert f"Lifted legal hold {hold_id} on subject 7" in removed
    assert "No legal holds in force." in ok(demo.run("hold", "list"))
    again = demo.run("hold", "remove", str(hold_id), "--reason", "x", "--by", OFFICER)
    assert again.exit_code == 2 and "already lifted by dpo@example.com" in again.output
    with demo.session() as s:
        assert verify_chain(s).ok


def test_bad_hold_input_is_one_line_and_exit_2(demo: Deployment) -> None:
    cases = [
        (["--subject-id", "7", "--reason", "  ", "--by", OFFICER], "needs a reason"),
        (["--subject-id", "999999", "--reason", "r", "--by", OFFICER], "no data subject"),
        (["--subject-id", "7", "--reason", "r", "--by", "nobody"], "must be an email"),
        (["--subject-id", "7", "--reason", "r", "--by", "ceo@example.com"], "may not place"),
        (["--subject-id", "7", "--reason", "r", "--by", OFFICER, "--until", "2001-01-01"], "past"),
    ]
    for args, message in cases:
        result = demo.run("hold", "add", *args, "--execute")
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output
    with demo.session() as s:
        assert s.scalars(select(LegalHold)).all() == []


def test_a_held_subject_is_not_proposed_again_in_any_bucket(demo: Deployment) -> None:
    batch_ids = records_and_batches(demo)
    subjects = batch_subjects(demo, batch_ids[0])
    excluded_record, held_subject = next(iter(subjects.items()))
    ok(
        demo.run(
            "review-batch", str(batch_ids[0]), "--accept", "--reviewer", OFFICER,
            "--exclude", f"{excluded_record}:legal hold", "--execute",
        )
    )  # fmt: skip
    hold(demo, held_subject)
    ok(demo.run("apply-deletions", "--bucket", BUCKET, "--execute"))
    ok(demo.run("purge-compliance-data", "--bucket", BUCKET, "--execute"))

    out = ok(demo.run("create-deletion-records", "--bucket", BUCKET))
    assert "1 held back: on legal hold" in out
    # The same subject is due in another bucket too: it is skipped there as well.
    demo.write_policy(
        DEMO_POLICY
        + '\n[buckets.everyone]\ntables = ["support_tickets"]\n'
        + 'rules = [{ sql = "SELECT id FROM users" }]\n'
    )
    ok(demo.run("create-deletion-records", "--bucket", "everyone", "--execute"))
    with demo.session() as s:
        everyone = set(
            s.scalars(
                select(ComplianceProfile.subject_id)
                .join(DeletionRecord.profile)
                .where(DeletionRecord.bucket == "everyone")
            )
        )
    assert held_subject not in everyone and len(everyone) > 100


def test_excluding_with_a_hold_keeps_the_subject_out_of_every_bucket_in_one_step(
    demo: Deployment,
) -> None:
    """An officer keeping records for a court case holds their subjects as they exclude them:
    the note becomes the hold's reason, and both are written together."""
    batch_id = records_and_batches(demo)[0]
    subjects = batch_subjects(demo, batch_id)
    (first, first_subject), (second, second_subject) = list(subjects.items())[:2]
    with demo.session() as s:
        done = exclude_records(
            s, batch_id, {first: " case 17/26 ", second: "case 18/26"}, actor=DPO, hold=True
        )
    assert done.excluded == 2 and len(done.holds) == 2
    with demo.session() as s:
        holds = {
            subject: reason
            for subject, reason in s.execute(
                select(ComplianceProfile.subject_id, LegalHold.reason).join(
                    ComplianceProfile, ComplianceProfile.id == LegalHold.compliance_profile_id
                )
            )
        }
        kept = s.scalars(
            select(DeletionRecord.review_note).where(DeletionRecord.id.in_([first, second]))
        ).all()
        actions = s.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert holds == {str(first_subject): "case 17/26", str(second_subject): "case 18/26"}
    assert sorted(kept) == ["case 17/26", "case 18/26"]
    assert actions[-3:] == ["deletion_records.excluded", "legal_hold.placed", "legal_hold.placed"]
    # Without a hold the exclusion stays with this batch only.
    with demo.session() as s:
        third = list(subjects)[2]
        assert exclude_records(s, batch_id, {third: "kept"}, actor=DPO).holds == []
        assert len(s.scalars(select(LegalHold)).all()) == 2


def test_an_exclusion_racing_a_decision_waits_for_it_and_is_then_refused(
    demo: Deployment,
) -> None:
    """Two officers at once: one decides the batch while the other excludes a record of it.
    The exclusion waits for the decision and then says so, instead of changing a batch
    that is already decided."""
    if demo.backend != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite lets one writer at a time")
    batch_id = records_and_batches(demo)[0]
    record_id = next(iter(batch_subjects(demo, batch_id)))
    outcome: list[str] = []

    def exclude() -> None:
        with demo.session() as s:
            try:
                exclude_records(s, batch_id, {record_id: "kept for a claim"}, actor=DPO)
                outcome.append("excluded")
            except Conflict as exc:
                outcome.append(str(exc))

    with demo.session() as deciding:
        get_batch(deciding, batch_id, lock=True)  # the decision is being written
        other = threading.Thread(target=exclude)
        other.start()
        other.join(timeout=1)
        assert other.is_alive() and outcome == []  # waiting, nothing written
        deciding.execute(
            update(DeletionBatch)
            .where(DeletionBatch.id == batch_id)
            .values(reviewed_status="accepted", reviewed_by=OFFICER, reviewed_at=utcnow())
        )
        deciding.commit()
    other.join(timeout=30)
    assert len(outcome) == 1 and outcome[0].startswith(f"batch {batch_id} was already accepted")
    with demo.session() as s:
        assert s.get(DeletionRecord, record_id).review_note is None


def test_apply_refuses_an_accepted_record_once_its_subject_is_held(demo: Deployment) -> None:
    batch_ids = records_and_batches(demo)
    subjects = batch_subjects(demo, batch_ids[0])
    record_id, subject = next(iter(subjects.items()))
    ok(demo.run("review-batch", str(batch_ids[0]), "--accept", "--reviewer", OFFICER, "--execute"))
    hold_id = hold(demo, subject)  # placed after acceptance: the hold still wins
    before = demo.app_rows("users", f"id = {int(subject)}")

    with demo.session() as s:
        page = list_batches(s, bucket=BUCKET, limit=50).frame
        assert page.set_index("batch_id").loc[batch_ids[0], "held"] == 1
        flags = batch_records(s, batch_ids[0], limit=500).frame.set_index("record_id")
        assert "on legal hold" in flags.loc[record_id, "flags"]

    dry = demo.run("apply-deletions", "--bucket", BUCKET)
    assert dry.exit_code == 1
    assert f"record {record_id}: on legal hold (hold {hold_id})" in dry.output
    result = demo.run("apply-deletions", "--bucket", BUCKET, "--execute")
    assert result.exit_code == 1, result.output
    assert f"Erased {len(subjects) - 1} of {len(subjects)} due records" in result.output
    assert "  1 refused: on legal hold" in result.output
    assert demo.app_rows("users", f"id = {int(subject)}") == before
    with demo.session() as s:
        record = s.get(DeletionRecord, record_id)
        assert record.deletion_applied_at is None
        assert record.deletion_error.startswith(f"on legal hold (hold {hold_id})")

    # Lifted: the next run erases what the officer accepted.
    ok(
        demo.run(
            "hold", "remove", str(hold_id), "--reason", "settled", "--by", OFFICER, "--execute"
        )
    )
    ok(demo.run("apply-deletions", "--bucket", BUCKET, "--execute"))
    assert demo.app_rows("users", f"id = {int(subject)}")[0]["full_name"] is None


def test_retention_cleanup_keeps_a_held_subjects_rows(demo: Deployment) -> None:
    demo.write_policy(
        DEMO_POLICY
        + '\n[retention.activity]\ntable = "activity_logs"\ntimestamp = "created_at"\ndays = 0\n'
    )
    subject = str(demo.app_rows("activity_logs")[0]["user_id"])
    kept = len(demo.app_rows("activity_logs", f"user_id = {int(subject)}"))
    hold(demo, subject)

    dry = ok(demo.run("retention-cleanup", "--category", "activity"))
    assert f"activity: {kept} old rows kept: subjects on legal hold" in dry
    ok(demo.run("retention-cleanup", "--category", "activity", "--execute"))
    assert len(demo.app_rows("activity_logs")) == kept
    assert len(demo.app_rows("activity_logs", f"user_id = {int(subject)}")) == kept


def test_an_erasure_request_for_a_held_subject_waits_with_a_note(demo: Deployment) -> None:
    hold_id = hold(demo, "12")
    ok(
        demo.run(
            "submit-dsar", "--kind", "erasure", "--subject-id", "12",
            "--requested-by", "support@example.com", "--execute",
        )
    )  # fmt: skip
    with demo.session() as s:
        reference = s.scalars(select(DsarRequest.reference)).one()
    ok(demo.run("review-dsar", reference, "--approve", "--reviewer", OFFICER, "--execute"))
    ok(demo.run("process-dsar-requests", "--execute"))

    with demo.session() as s:
        request = s.scalars(select(DsarRequest)).one()
        assert request.status == "processing"
        assert request.last_error.startswith(f"on legal hold (hold {hold_id})")
        assert request.deletion_record_id is None
        assert s.scalars(select(DeletionRecord)).all() == []
