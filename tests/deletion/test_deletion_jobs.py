"""A bucket's whole lifecycle from the command line: records, batches, review, apply, purge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from compliance.audit.chain import verify_chain
from compliance.deletion.records import _without_conflicts
from compliance.store.engines import migrate
from compliance.store.models import (
    AuditEvent,
    ComplianceProfile,
    DeletionBatch,
    DeletionRecord,
    JobRun,
)
from tests.conftest import DEMO_POLICY, Backend, Deployment, fill_demo

BUCKET = "closed_accounts"


def closed_subjects(d: Deployment) -> set[str]:
    """What the bucket's rules mean, computed independently with plain SQL."""
    rows = d.app_rows(
        "users",
        "closed_at IS NOT NULL AND closed_at < "
        + ("datetime('now', '-30 days')" if d.backend == "sqlite" else "now() - interval '30d'"),
    )
    return {str(r["id"]) for r in rows}


def table_counts(d: Deployment) -> dict[str, int]:
    with d.session() as s:
        return {
            "records": s.scalar(select(func.count()).select_from(DeletionRecord)),
            "batches": s.scalar(select(func.count()).select_from(DeletionBatch)),
            "profiles": s.scalar(select(func.count()).select_from(ComplianceProfile)),
            "events": s.scalar(select(func.count()).select_from(AuditEvent)),
        }


def app_checksum(d: Deployment) -> str:
    tables = d.policy().tables
    return d.checksum(*(n for n, t in tables.items() if t.system == "app_database"))


def accept(d: Deployment, batch_id: int) -> None:
    result = d.run(
        "review-batch", str(batch_id), "--accept", "--reviewer", "dpo@example.com", "--execute"
    )
    assert result.exit_code == 0, result.output


def summary(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_a_bucket_goes_from_rules_to_purge(demo: Deployment) -> None:
    due = closed_subjects(demo)
    assert len(due) > 10
    billing = demo.checksum("invoices", "payments")

    created = summary(
        demo.run("create-deletion-records", "--bucket", BUCKET, "--execute", "--json")
    )
    assert created["created"] == len(due)
    with demo.session() as s:
        subjects = set(
            s.scalars(
                select(ComplianceProfile.subject_id)
                .join(DeletionRecord)
                .where(DeletionRecord.bucket == BUCKET)
            )
        )
    assert subjects == due

    batches = summary(
        demo.run(
            "create-deletion-batches", "--bucket", BUCKET, "--max-batch-size", "10", "--execute",
            "--json",
        )
    )  # fmt: skip
    assert batches["records"] == len(due)
    assert batches["batches"] == -(-len(due) // 10)
    first, second, *rest = batches["batch_ids"]

    with demo.session() as s:
        excluded_id, kept_subject = s.execute(
            select(DeletionRecord.id, ComplianceProfile.subject_id)
            .join(ComplianceProfile)
            .where(DeletionRecord.deletion_batch_id == first)
            .limit(1)
        ).one()
    accepted = demo.run(
        "review-batch", str(first), "--accept", "--reviewer", "DPO@example.com",
        "--exclude", f"{excluded_id}:legal hold", "--execute",
    )  # fmt: skip
    assert accepted.exit_code == 0, accepted.output
    assert "Accepted batch" in accepted.output
    rejected = demo.run(
        "review-batch", str(second), "--reject", "--reviewer", "dpo@example.com",
        "--reason", "rule too broad", "--execute",
    )  # fmt: skip
    assert rejected.exit_code == 0, rejected.output

    applied = summary(demo.run("apply-deletions", "--bucket", BUCKET, "--execute", "--json"))
    assert applied["applied"] == 9
    assert applied["failed"] == 0

    with demo.session() as s:
        records = s.execute(
            select(DeletionRecord, ComplianceProfile.subject_id).join(ComplianceProfile)
        ).all()
        batch = s.get(DeletionBatch, first)
        assert (batch.reviewed_status, batch.reviewed_by) == ("accepted", "dpo@example.com")
        assert s.get(DeletionBatch, second).reviewed_reason == "rule too broad"
    erased = {sid for r, sid in records if r.deletion_applied_at is not None}
    kept = {sid for r, sid in records if r.deletion_applied_at is None}
    assert len(erased) == 9 and kept_subject in kept
    note = next(r.review_note for r, sid in records if sid == kept_subject)
    assert note == "legal hold"

    ids = ",".join(erased)
    assert demo.app_rows("workflows", f"user_id IN ({ids})") == []
    assert demo.app_rows("activity_logs", f"user_id IN ({ids})") == []
    assert all(u["full_name"] is None for u in demo.app_rows("users", f"id IN ({ids})"))
    survivor = demo.app_rows("users", f"id = {kept_subject}")[0]
    assert survivor["full_name"] is not None
    assert demo.checksum("invoices", "payments") == billing

    purged = summary(demo.run("purge-compliance-data", "--bucket", BUCKET, "--execute", "--json"))
    # The 9 applied, the excluded one and the rejected batch's records are done with.
    assert purged["records"] == 10 + len([r for r, _ in records if r.deletion_batch_id == second])
    assert purged["batches"] == 2
    with demo.session() as s:
        left = s.scalars(select(DeletionRecord.deletion_batch_id).distinct()).all()
        assert set(left) == set(rest)
        assert verify_chain(s).ok


def test_dry_runs_change_nothing_and_say_so(demo: Deployment) -> None:
    demo.run("create-deletion-records", "--bucket", BUCKET, "--execute")
    demo.run("create-deletion-batches", "--bucket", BUCKET, "--execute")
    with demo.session() as s:
        batch_id = s.scalar(select(func.min(DeletionBatch.id)))
    before, app_before = table_counts(demo), app_checksum(demo)

    for args in (
        ["create-deletion-records", "--bucket", "inactive_accounts"],
        ["create-deletion-batches", "--bucket", BUCKET],
        ["review-batch", str(batch_id), "--accept", "--reviewer", "dpo@example.com"],
        ["purge-compliance-data", "--bucket", BUCKET],
    ):
        result = demo.run(*args)
        assert result.exit_code == 0, result.output
        assert result.output.startswith("[DRY RUN] Would"), result.output
        assert "Re-run with --execute" in result.output

    accept(demo, batch_id)
    before, app_before = table_counts(demo), app_checksum(demo)
    dry = demo.run("apply-deletions")
    assert dry.exit_code == 0 and "[DRY RUN] Would erase" in dry.output
    assert table_counts(demo) == before
    assert app_checksum(demo) == app_before


def test_every_run_is_recorded_with_its_arguments_and_outcome(demo: Deployment) -> None:
    demo.run("create-deletion-records", "--bucket", BUCKET)
    demo.run("create-deletion-records", "--bucket", BUCKET, "--execute")
    with demo.session() as s:
        runs = s.scalars(select(JobRun).order_by(JobRun.id)).all()
    assert [(r.job, r.dry_run, r.status) for r in runs] == [
        ("create-deletion-records", True, "succeeded"),
        ("create-deletion-records", False, "succeeded"),
    ]
    assert runs[1].arguments["bucket"] == BUCKET
    assert runs[1].summary["created"] > 0
    assert runs[1].finished_at >= runs[1].started_at


def test_rerunning_each_job_does_no_work_twice(demo: Deployment) -> None:
    first = summary(demo.run("create-deletion-records", "--bucket", BUCKET, "--execute", "--json"))
    again = summary(demo.run("create-deletion-records", "--bucket", BUCKET, "--execute", "--json"))
    assert again["created"] == 0 and again["skipped"] == first["created"]

    summary(demo.run("create-deletion-batches", "--bucket", BUCKET, "--execute", "--json"))
    assert (
        summary(demo.run("create-deletion-batches", "--bucket", BUCKET, "--execute", "--json"))[
            "batches"
        ]
        == 0
    )
    with demo.session() as s:
        for batch_id in s.scalars(select(DeletionBatch.id)):
            accept(demo, batch_id)
    applied = summary(demo.run("apply-deletions", "--execute", "--json"))
    assert applied["applied"] == first["created"]
    app_after = app_checksum(demo)
    assert summary(demo.run("apply-deletions", "--execute", "--json"))["applied"] == 0
    assert app_checksum(demo) == app_after


def test_subjects_found_again_after_erasure_are_not_reopened(demo: Deployment) -> None:
    """The demo rules skip anonymized users, so an erased account is not proposed twice."""
    demo.run("create-deletion-records", "--bucket", BUCKET, "--execute")
    demo.run("create-deletion-batches", "--bucket", BUCKET, "--execute")
    with demo.session() as s:
        for batch_id in s.scalars(select(DeletionBatch.id)):
            accept(demo, batch_id)
    demo.run("apply-deletions", "--execute")
    demo.run("purge-compliance-data", "--bucket", BUCKET, "--execute")
    again = summary(demo.run("create-deletion-records", "--bucket", BUCKET, "--execute", "--json"))
    assert again["due"] == 0


def test_a_record_that_fails_is_kept_with_its_error_and_the_rest_go_on(demo: Deployment) -> None:
    demo.run("create-deletion-records", "--bucket", BUCKET, "--execute")
    demo.run("create-deletion-batches", "--bucket", BUCKET, "--max-batch-size", "500", "--execute")
    with demo.session() as s:
        batch_id = s.scalar(select(DeletionBatch.id))
        victim = s.scalar(
            select(ComplianceProfile.subject_id).join(DeletionRecord).order_by(DeletionRecord.id)
        )
    # A table the policy has never heard of still points at this user: its workflows cannot go.
    with demo.app_engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE shared_links (id INTEGER PRIMARY KEY, "
                "workflow_id INTEGER NOT NULL REFERENCES workflows(id))"
            )
        )
        wf = conn.execute(text(f"SELECT min(id) FROM workflows WHERE user_id = {victim}")).scalar()
        if wf is None:
            conn.execute(
                text(
                    "INSERT INTO workflows (id, user_id, name, created_at, updated_at) VALUES "
                    f"(999999, {victim}, 'w', '2020-01-01 00:00:00', '2020-01-01 00:00:00')"
                )
            )
            wf = 999999
        conn.execute(text(f"INSERT INTO shared_links (id, workflow_id) VALUES (1, {wf})"))
    accept(demo, batch_id)

    result = demo.run("apply-deletions", "--chunk-size", "50", "--execute", "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    # Found blocked by a foreign key for the first time: the run exits 1, though not "failed".
    assert (data["blocked"], data["newly_blocked"], data["failed"]) == (1, 1, 0)
    assert data["applied"] == len(closed_subjects(demo)) - 1
    with demo.session() as s:
        failed = s.execute(
            select(DeletionRecord, ComplianceProfile.subject_id)
            .join(ComplianceProfile)
            .where(DeletionRecord.deletion_error.is_not(None))
        ).all()
    assert [sid for _, sid in failed] == [victim]
    assert failed[0][0].deletion_applied_at is None
    assert "FOREIGN KEY" in failed[0][0].deletion_error.upper()
    # The victim's data is untouched (its chunk was retried record by record).
    assert demo.app_rows("users", f"id = {victim}")[0]["full_name"] is not None

    with demo.app_engine.begin() as conn:
        conn.execute(text("DROP TABLE shared_links"))
    # A blocked record waits for an officer (or a policy change) instead of failing every run.
    retry = demo.run("apply-deletions", "--retry-blocked", "--execute", "--json")
    assert retry.exit_code == 0
    assert json.loads(retry.stdout)["applied"] == 1


def test_when_both_databases_are_one_the_rules_feed_the_records_directly(
    backend: Backend, tmp_path: Path
) -> None:
    """Same URL for both: one INSERT ... SELECT, same records as the chunked path would make."""
    url = backend.url("shared")
    d = Deployment(tmp_path, tmp_path / "compliance.toml", url, url, backend.name)
    d.write_policy(DEMO_POLICY)
    migrate(d.engine)
    fill_demo(d, users_count=400, seed=7)
    due = closed_subjects(d)

    dry = summary(d.run("create-deletion-records", "--bucket", BUCKET, "--json"))
    assert (dry["due"], dry["created"], dry["executed"]) == (len(due), len(due), False)
    first = summary(d.run("create-deletion-records", "--bucket", BUCKET, "--execute", "--json"))
    assert (first["due"], first["created"], first["skipped"]) == (len(due), len(due), 0)
    with d.session() as s:
        opened = set(
            s.scalars(
                select(ComplianceProfile.subject_id)
                .join(DeletionRecord)
                .where(DeletionRecord.bucket == BUCKET)
            )
        )
        event = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "deletion_records.created")
        ).one()
    assert opened == due
    assert event.details == {"created": len(due), "skipped": 0, "in_database": True}
    again = summary(d.run("create-deletion-records", "--bucket", BUCKET, "--execute", "--json"))
    assert (again["created"], again["skipped"]) == (0, len(due))

    billing = d.checksum("invoices", "payments")
    summary(d.run("create-deletion-batches", "--bucket", BUCKET, "--execute", "--json"))
    with d.session() as s:
        batch_ids = list(s.scalars(select(DeletionBatch.id)))
    for batch_id in batch_ids:
        accept(d, batch_id)
    assert summary(d.run("apply-deletions", "--execute", "--json"))["applied"] == len(due)
    assert d.checksum("invoices", "payments") == billing
    d.dispose()


def test_a_profile_someone_else_made_meanwhile_sends_the_run_the_careful_way(
    deployment: Deployment,
) -> None:
    """Plain INSERTs of new profiles clash with one made meanwhile: that work is undone and the
    ON CONFLICT way runs instead, so the run still opens every record (PostgreSQL only)."""
    if deployment.backend != "postgresql":
        pytest.skip("the plain-INSERT way is PostgreSQL's")
    with deployment.session() as s:
        s.add(ComplianceProfile(subject_id="made-meanwhile"))
        s.commit()

        def plain() -> str:
            s.add(ComplianceProfile(subject_id="undone"))
            s.flush()
            s.add(ComplianceProfile(subject_id="made-meanwhile"))
            s.flush()
            return "plain"

        assert _without_conflicts(s, plain, lambda: "careful") == "careful"
        s.commit()
        subjects = set(s.scalars(select(ComplianceProfile.subject_id)))
    assert subjects == {"made-meanwhile"}
