"""Personal data really goes: keyed hashes, redacted job runs, requests and exports forgotten.

Each test ends with the query an auditor would run: is the subject's email, name or
identity note still anywhere in our tables or files?
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import zipfile
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select, text, update

from compliance.audit.subject_keys import hashed_key, key_secret
from compliance.dsar.decisions import review_dsar
from compliance.dsar.processing import process_dsar_requests
from compliance.dsar.requests import submit
from compliance.store.models import AuditEvent, DsarNote, DsarRequest, JobRun, utcnow
from tests.conftest import BY_SUPPORT, DEMO_POLICY, DPO, SUPPORT_STAFF, Deployment
from tests.smtp_server import Inbox, mailing_to
from tests.smtp_server import smtp_inbox as smtp_inbox  # the fixture

KEY = "k" * 16 + "-a-secret-key-of-40-chars-" + "x" * 8
PRODUCTION_POLICY = DEMO_POLICY.replace("demo_mode = true", "demo_mode = false")


def compliance_dump(d: Deployment) -> str:
    """Every row of every compliance table, as text: what a residual-PII query searches."""
    from sqlalchemy import MetaData

    meta = MetaData()
    meta.reflect(d.engine)
    parts = []
    with d.engine.connect() as conn:
        for table in meta.sorted_tables:
            for row in conn.execute(select(table)):
                parts.append(json.dumps([str(v) for v in row], ensure_ascii=False))
    return "\n".join(parts)


def files_under(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file()) if directory.exists() else []


# ---------------------------------------------------------------- keyed hash


def _hmac(value: str, key: str = KEY) -> str:
    return "anon-" + hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()[:40]


def _erase_closed_accounts(d: Deployment, env: dict[str, str | None]) -> list[int]:
    for args in (
        ["create-deletion-records", "--bucket", "closed_accounts", "--execute"],
        ["create-deletion-batches", "--bucket", "closed_accounts", "--execute"],
        ["review-batch", "1", "--accept", "--reviewer", "dpo@example.com", "--execute"],
    ):
        result = d.run(*args, env=env)
        assert result.exit_code == 0, result.output
    with d.session() as s:
        from compliance.store.models import ComplianceProfile, DeletionRecord

        return [
            int(k)
            for k in s.scalars(
                select(ComplianceProfile.subject_id)
                .join(DeletionRecord)
                .where(DeletionRecord.deletion_batch_id == 1)
            )
        ]


def test_the_hash_strategy_is_hmac_with_the_secret_key(demo: Deployment) -> None:
    demo.write_policy(PRODUCTION_POLICY)
    users = {u["id"]: u["email"] for u in demo.app_rows("users")}
    env = {"COMPLIANCE_HASH_KEY": KEY}
    subjects = _erase_closed_accounts(demo, env)
    result = demo.run("apply-deletions", "--execute", env=env)
    assert result.exit_code == 0, result.output
    erased = {u["id"]: u for u in demo.app_rows("users")}
    for subject in subjects:
        email = users[subject]
        assert erased[subject]["email"] == _hmac(email), "HMAC-SHA256(key, email)"
        # Anyone who guesses the address cannot recompute it without the key.
        unkeyed = "anon-" + hashlib.sha256(email.encode()).hexdigest()[:40]
        assert erased[subject]["email"] != unkeyed
        assert erased[subject]["email"] != _hmac(email, "another key" * 4)


def test_without_a_key_outside_demo_the_hash_strategy_is_refused_before_any_change(
    demo: Deployment,
) -> None:
    demo.write_policy(PRODUCTION_POLICY)
    _erase_closed_accounts(demo, {"COMPLIANCE_HASH_KEY": None})
    before = demo.checksum("users", "workflows", "support_tickets")
    for env in ({"COMPLIANCE_HASH_KEY": None}, {"COMPLIANCE_HASH_KEY": "short"}):
        result = demo.run("apply-deletions", "--execute", env=env)
        assert result.exit_code == 2, result.output
        assert "COMPLIANCE_HASH_KEY" in result.stderr
    assert demo.checksum("users", "workflows", "support_tickets") == before
    with demo.session() as s:
        from compliance.store.models import DeletionRecord

        assert not s.scalar(
            select(func.count()).select_from(DeletionRecord).where(
                DeletionRecord.deletion_error.is_not(None)
            )
        )  # fmt: skip


# ---------------------------------------------------------------- job runs


def test_job_runs_keep_no_email_or_identity_note(demo: Deployment) -> None:
    user = demo.app_rows("users", "id = 12")[0]
    note = "Passport of Dmitri checked on video call"
    ok = demo.run(
        "submit-dsar", "--kind", "access", "--email", user["email"], "--identity-check", note,
        "--requested-by", "support@example.com", "--execute",
    )  # fmt: skip
    assert ok.exit_code == 0, ok.output
    refused = demo.run(
        "submit-dsar", "--kind", "access", "--email", "nobody.here@example.org",
        "--requested-by", "support@example.com", "--execute",
    )  # fmt: skip
    assert refused.exit_code == 2 and "nobody.here@example.org" in refused.stderr
    with demo.session() as s:
        runs = s.scalars(select(JobRun).where(JobRun.job == "submit-dsar")).all()
    assert len(runs) == 2
    stored = json.dumps([[r.arguments, r.summary, r.error] for r in runs])
    for secret in (user["email"], note, "nobody.here@example.org", user["full_name"]):
        assert secret not in stored
    assert runs[0].arguments["email"] == "[redacted]"
    assert runs[0].arguments["identity_check"] == "[redacted]"
    assert runs[0].arguments["requested_by"] == "support@example.com", "staff stay accountable"
    assert "[email]" in (runs[1].error or "")


def test_old_job_runs_are_purged_but_each_jobs_last_success_stays(demo: Deployment) -> None:
    demo.write_policy(
        DEMO_POLICY.replace(
            "[retention.dsar_exports]",
            "[retention.job_runs]\ndays = 30\n\n[retention.dsar_exports]",
        )
    )
    for _ in range(3):
        assert demo.run("verify-audit-log").exit_code == 0
    with demo.session() as s:
        s.execute(update(JobRun).values(started_at=utcnow() - timedelta(days=40)))
        s.commit()
        newest_success = s.scalar(
            select(func.max(JobRun.id)).where(JobRun.job == "verify-audit-log")
        )
    dry = demo.run("--json", "retention-cleanup")
    assert dry.exit_code == 0, dry.output
    assert {c["name"]: c["rows"] for c in json.loads(dry.stdout)["categories"]}["job_runs"] == 2
    result = demo.run("retention-cleanup", "--category", "job_runs", "--execute")
    assert result.exit_code == 0, result.output
    with demo.session() as s:
        left = s.scalars(select(JobRun.id).where(JobRun.started_at < utcnow() - timedelta(days=30)))
        assert list(left) == [newest_success]
        event = s.scalars(select(AuditEvent).where(AuditEvent.target_id == "job_runs")).one()
    assert event.details["rows_deleted"] == 2 and event.details["days"] == 30


# ---------------------------------------------------------------- erasure forgets the subject


def _complete_erasure(d: Deployment, subject: str) -> str:
    with d.session() as s:
        made = submit(
            s, d.policy(), d.app_engine, kind="erasure", subject_id=subject,
            requested_by=SUPPORT_STAFF, identity_check="Called back; ID card seen", execute=True,
        )  # fmt: skip
        reference = made.request.reference
        review_dsar(
            s, reference, "approve", reviewer=DPO, four_eyes=True, policy=d.policy(),
            execute=True,
        )  # fmt: skip
        process_dsar_requests(s, d.datamap(), actor="worker", execute=True)
    for args in (  # the approval was the review: no batch to make or accept
        ["apply-deletions", "--execute"],
        ["process-dsar-requests", "--execute"],
    ):
        result = d.run(*args)
        assert result.exit_code == 0, (args, result.output)
    return reference


def test_a_completed_erasure_leaves_no_email_note_or_export_behind(
    demo: Deployment, smtp_inbox: Inbox
) -> None:
    demo.write_policy(mailing_to(smtp_inbox, DEMO_POLICY))  # the access export is delivered
    subject = "21"
    user = demo.app_rows("users", f"id = {subject}")[0]
    exports = demo.dir / "exports"
    # Before erasure: an access export, a direct export by support, a staff note.
    with demo.session() as s:
        access = submit(
            s, demo.policy(), demo.app_engine, kind="access", subject_id=subject,
            requested_by=SUPPORT_STAFF, identity_check="Knew the invoice number", execute=True,
        )  # fmt: skip
        review_dsar(
            s, access.request.reference, "approve", reviewer=DPO, four_eyes=True, execute=True
        )
        process_dsar_requests(s, demo.datamap(), actor="worker", execute=True)
        body = f"Subject {user['full_name']} phoned from {user['phone']}"
        s.add(DsarNote(dsar_request_id=access.request.id, author="support@example.com", body=body))
        s.commit()
    direct = demo.run("export-user-data", *BY_SUPPORT, "--subject-id", subject, "--format", "csv")
    assert direct.exit_code == 0, direct.output
    other = demo.run("export-user-data", *BY_SUPPORT, "--subject-id", "22")
    # The library call above wrote to the policy's folder; the jobs to COMPLIANCE_EXPORT_DIR.
    access_zip = demo.policy().export_dir / f"{access.request.reference}.zip"
    assert access_zip.exists() and len(files_under(exports)) == 2

    reference = _complete_erasure(demo, subject)

    with demo.session() as s:
        # Once erased, the subject's requests know them by the keyed hash of their key only.
        assert not s.scalars(select(DsarRequest).where(DsarRequest.subject_id == subject)).all()
        hashed = hashed_key(subject, key_secret(demo.policy()))
        requests = s.scalars(select(DsarRequest).where(DsarRequest.subject_id == hashed)).all()
        assert {r.status for r in requests} == {"completed"}
        for r in requests:
            assert (r.subject_email, r.identity_check, r.export_path) == (None, None, None)
            assert r.reference and r.requested_at and r.completed_at and r.reviewed_by
        erasure = next(r for r in requests if r.reference == reference)
        assert erasure.reviewed_at is not None
        forgotten = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "dsar.subject_forgotten")
        ).one()
    assert forgotten.details["export_files_deleted"] == 2
    assert forgotten.target_id == reference
    assert other.exit_code == 0 and not access_zip.exists()
    assert [p.name[:11] for p in files_under(exports)] == ["subject-22-"], "only the other's"
    # The residual-PII query: nothing of the subject in any compliance table.
    dump = compliance_dump(demo)
    for secret in (user["email"], user["full_name"], user["phone"], "ID card seen",
                   "Knew the invoice number"):  # fmt: skip
        if secret:
            assert secret not in dump, secret


def test_cleanup_removes_export_user_data_files_older_than_the_retention(
    demo: Deployment,
) -> None:
    exports = demo.dir / "exports"
    assert demo.run("export-user-data", *BY_SUPPORT, "--subject-id", "5").exit_code == 0
    (fresh,) = files_under(exports)
    old = exports / "subject-6-20200101T000000Z.zip"
    with zipfile.ZipFile(old, "w") as archive:
        archive.writestr("users.csv", "id,email\n6,someone@example.org\n")
    os.utime(old)  # a fresh mtime: the name's timestamp is what counts
    unrelated = exports / "notes.txt"
    unrelated.write_text("not an export")
    dry = demo.run("cleanup-expired-exports")
    assert "1 export-user-data files" in dry.output and old.exists()
    result = demo.run("cleanup-expired-exports", "--execute")
    assert result.exit_code == 0, result.output
    assert not old.exists() and fresh.exists() and unrelated.exists()
    with demo.session() as s:
        event = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "dsar.exports_cleaned")
        ).one()
    assert event.details["user_exports"] == 1


def test_no_residual_pii_query_finds_the_subject_in_job_runs_after_a_whole_request(
    demo: Deployment,
) -> None:
    user = demo.app_rows("users", "id = 30")[0]
    for args in (
        ["submit-dsar", "--kind", "erasure", "--email", user["email"], "--identity-check",
         "selfie with ID", "--requested-by", "support@example.com", "--execute"],
        ["export-user-data", *BY_SUPPORT, "--subject-id", "30"],
    ):  # fmt: skip
        assert demo.run(*args).exit_code == 0
    with demo.engine.connect() as conn:
        stored = conn.execute(text("SELECT arguments, summary, error FROM job_runs")).all()
    assert user["email"] not in str(stored) and "selfie with ID" not in str(stored)
