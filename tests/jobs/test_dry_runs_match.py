"""Every job's dry run counts exactly what its execution then does, on the same state."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from compliance.store.engines import migrate
from compliance.store.models import ComplianceProfile, DeletionBatch, DeletionRecord
from tests.conftest import DEMO_POLICY, Backend, Deployment, fill_demo, ok, ok_stdout
from tests.slack_stub import SlackStub

BUCKET = "closed_accounts"
OFFICER = "dpo@example.com"
#: What differs between a forecast and an outcome by nature, not by count: the moment it
#: ran (and the deadlines and expiries counted from it), its mode, ids and references given
#: only on insert, a webhook's answer.
NOT_COUNTS = {
    "elapsed_s", "executed", "cutoff", "anchored_at", "status", "batch_ids", "webhooks",
    "started_at", "finished_at", "due_at", "token_expires_at", "otp_expires_at",
    "reference", "delivery_id",
}  # fmt: skip
# Records, once applied or rejected, are purged at once; retention keeps one day of logs.
POLICY = DEMO_POLICY.replace(
    'review_columns = ["plan", "country"]\n\n# ----',
    'review_columns = ["plan", "country"]\npurge_after_days = 0\n\n# ----',
)
assert "purge_after_days = 0" in POLICY


def dry_then_execute(
    d: Deployment, *args: str, env: dict[str, str] | None = None
) -> tuple[Any, Any]:
    """The command's dry run, then its execution, each with --json; both must exit alike."""
    dry = d.run("--json", *args, env=env)
    done = d.run("--json", *args, "--execute", env=env)
    assert dry.exit_code == done.exit_code, (dry.output, done.output)
    assert dry.exit_code in (0, 1), dry.output
    return json.loads(dry.stdout), json.loads(done.stdout)


def counts(value: Any) -> Any:
    """The summary without NOT_COUNTS, at any depth."""
    if isinstance(value, dict):
        return {k: counts(v) for k, v in value.items() if k not in NOT_COUNTS}
    if isinstance(value, list):
        return [counts(v) for v in value]
    return value


def same_counts(d: Deployment, *args: str, env: dict[str, str] | None = None) -> Any:
    """Run the command both ways and require the same summary but for NOT_COUNTS."""
    dry, done = dry_then_execute(d, *args, env=env)
    if isinstance(dry, dict):
        assert dry.get("executed", False) is False and done.get("executed", True) is True
    assert counts(dry) == counts(done), args
    return done


def record_ids(d: Deployment, bucket: str) -> dict[int, str]:
    with d.session() as s:
        return dict(
            s.execute(
                select(DeletionRecord.id, ComplianceProfile.subject_id)
                .join(ComplianceProfile)
                .where(DeletionRecord.bucket == bucket)
                .order_by(DeletionRecord.id)
            ).all()
        )


def batch_ids(d: Deployment, bucket: str) -> list[int]:
    with d.session() as s:
        return list(
            s.scalars(
                select(DeletionBatch.id)
                .where(DeletionBatch.bucket == bucket)
                .order_by(DeletionBatch.id)
            )
        )


def hold(d: Deployment, subject: str) -> int:
    out = json.loads(
        ok_stdout(
            d.run(
                "--json", "hold", "add", "--subject-id", subject, "--reason", "case 9",
                "--by", OFFICER, "--execute",
            )
        )
    )  # fmt: skip
    return int(out["hold"]["id"])


def test_each_deletion_job_does_what_its_dry_run_counted(demo: Deployment) -> None:
    demo.write_policy(POLICY)
    held_before = hold(demo, "3")  # whoever subject 3 is, a hold is in force on it

    created = same_counts(demo, "create-deletion-records", "--bucket", BUCKET)
    assert created["created"] > 20
    assert same_counts(demo, "create-deletion-records", "--bucket", BUCKET)["created"] == 0
    batched = same_counts(
        demo, "create-deletion-batches", "--bucket", BUCKET, "--max-batch-size", "10"
    )
    assert batched["records"] == created["created"]
    first, second, *rest = batch_ids(demo, BUCKET)
    records = record_ids(demo, BUCKET)
    one_record, one_subject = next(iter(records.items()))

    reviewed = same_counts(
        demo, "review-batch", str(first), "--accept", "--reviewer", OFFICER,
        "--exclude", f"{one_record}:kept for a claim",
    )  # fmt: skip
    assert (reviewed["accepted"], reviewed["excluded"]) == (9, 1)
    rejected = same_counts(
        demo, "review-batch", str(second), "--reject", "--reviewer", OFFICER, "--reason", "too wide"
    )
    assert rejected["rejected"] == 10
    bulk = same_counts(
        demo, "review-batch", "--all-pending", "--bucket", BUCKET, "--accept",
        "--reviewer", OFFICER,
    )  # fmt: skip
    assert [b["batch_id"] for b in bulk["decided"]] == rest and bulk["skipped"] == []

    # A subject held after acceptance: apply refuses it, and says so both ways (exit 1).
    held_record, held_subject = list(records.items())[-1]
    lifted = hold(demo, held_subject)
    applied = same_counts(demo, "apply-deletions", "--chunk-size", "7")
    assert (applied["held"], applied["failed"]) == (1, 0)
    assert applied["applied"] == created["created"] - 10 - 1 - 1  # rejected, excluded, held
    assert same_counts(demo, "apply-deletions", "--chunk-size", "7")["applied"] == 0

    purged = same_counts(demo, "purge-compliance-data", "--bucket", BUCKET)
    assert purged["records"] == created["created"] - 1  # all but the held one
    assert purged["batches"] == len(rest) + 1  # every batch but the held record's
    assert same_counts(demo, "purge-compliance-data", "--bucket", BUCKET)["records"] == 0

    # A hold has no counts: its plan is what the dry run shows and the execution carries out.
    dry, lift = dry_then_execute(
        demo, "hold", "remove", str(lifted), "--reason", "settled", "--by", OFFICER
    )
    assert counts(dry["plan"]) == counts(lift["plan"]) and lift["hold"]["id"] == lifted
    dry, placed = dry_then_execute(
        demo, "hold", "add", "--subject-id", held_subject, "--reason", "again", "--by", OFFICER
    )
    assert counts(dry["plan"]) == counts(placed["plan"])
    assert placed["hold"]["subject_id"] == held_subject
    assert held_before and one_subject and held_record


def test_replay_retention_exports_and_anchor_do_what_their_dry_runs_counted(
    demo: Deployment,
) -> None:
    demo.write_policy(POLICY)
    ok(demo.run("create-deletion-records", "--bucket", BUCKET, "--execute"))
    ok(demo.run("create-deletion-batches", "--bucket", BUCKET, "--execute"))
    ok(
        demo.run(
            "review-batch", "--all-pending", "--bucket", BUCKET, "--accept",
            "--reviewer", OFFICER, "--execute",
        )
    )  # fmt: skip
    ok(demo.run("apply-deletions", "--execute"))

    replayed = same_counts(demo, "replay-erasures", "--since", datetime.now(UTC).date().isoformat())
    assert replayed["erasures"] > 20
    cleaned = same_counts(demo, "retention-cleanup")
    assert cleaned["rows"] > 0
    same_counts(demo, "cleanup-expired-exports")

    dry, done = dry_then_execute(demo, "anchor-audit-log")
    assert counts(dry["anchor"]) == counts(done["anchor"])


def test_an_alert_posts_what_its_dry_run_listed(deployment: Deployment) -> None:
    fill_demo(deployment, users_count=400, seed=7)
    # inactive_accounts alerts its ops channel on the first of the month.
    for args in (["create-deletion-records"], ["create-deletion-batches"]):
        ok(deployment.run(*args, "--bucket", "inactive_accounts", "--execute"))
    with SlackStub() as stub:
        env = {"SLACK_BOT_TOKEN": "xoxb-test-token", "SLACK_API_URL": stub.base_url}
        dry, done = dry_then_execute(
            deployment, "alert-unreviewed-batches", "--today", "2030-01-01", env=env
        )
    would = [(a["target"], a["counts"]) for a in dry["alerts"] if a["status"] == "due"]
    posted = [(a["target"], a["counts"]) for a in done["alerts"] if a["status"] == "posted"]
    assert would == posted and posted
    assert len([c for c in stub.calls if c.method == "chat.postMessage"]) == len(posted)


def test_records_opened_in_the_database_are_counted_alike_by_the_dry_run(
    backend: Backend, tmp_path: Path
) -> None:
    """Both URLs one database: execution opens records in-database; the dry run counts that."""
    url = backend.url("shared")
    d = Deployment(tmp_path, tmp_path / "compliance.toml", url, url, backend.name)
    d.write_policy(POLICY)
    migrate(d.engine)
    fill_demo(d, users_count=400, seed=7)
    hold(d, "3")
    created = same_counts(d, "create-deletion-records", "--bucket", BUCKET)
    assert created["created"] > 20
    d.dispose()


def test_dsar_processing_does_what_its_dry_run_listed(demo: Deployment) -> None:
    """The claims, the erasures it completes and the keys it hashes: listed, then done."""
    from compliance.dsar.decisions import review_dsar
    from compliance.dsar.requests import submit
    from tests.conftest import DPO, SUPPORT_STAFF

    demo.write_policy(POLICY)
    references = {}
    with demo.session() as s:
        for subject, kind in (("6", "erasure"), ("5", "access"), ("8", "objection")):
            references[kind] = submit(
                s, demo.policy(), demo.app_engine, kind=kind, subject_id=subject,
                requested_by=SUPPORT_STAFF, execute=True,
                **({"scope": "profiling"} if kind == "objection" else {}),
            ).request.reference  # fmt: skip
        review_dsar(
            s, references["erasure"], "approve", reviewer=DPO, four_eyes=False,
            policy=demo.policy(), execute=True,
        )  # fmt: skip
    # The erasure is scheduled, batched, accepted and applied: the next run completes it.
    ok(demo.run("process-dsar-requests", "--execute"))
    ok(demo.run("create-deletion-batches", "--bucket", "dsar_erasure", "--execute"))
    ok(
        demo.run(
            "review-batch", "--all-pending", "--bucket", "dsar_erasure", "--accept",
            "--reviewer", OFFICER, "--execute",
        )
    )  # fmt: skip
    ok(demo.run("apply-deletions", "--execute"))
    with demo.session() as s:
        for kind in ("access", "objection"):
            review_dsar(s, references[kind], "approve", reviewer=DPO, four_eyes=False, execute=True)

    dry, done = dry_then_execute(demo, "process-dsar-requests")
    plan = dry["plan"]
    assert set(plan["claim"]) == {references["access"], references["objection"]}, plan
    assert plan["complete_erasures"] == [references["erasure"]], plan
    assert done["claimed"] == len(plan["claim"])
    assert set(plan["complete_erasures"]) <= set(done["completed"])
    assert done["ready"] == plan["claim_access"] == [references["access"]]  # auto_deliver off
    assert done["keys_hashed"] == plan["hash_keys"]
    assert not done["failed"] and not plan["fail_erasures"]


def test_the_deadline_alert_posts_what_its_dry_run_listed(demo: Deployment) -> None:
    from compliance.dsar.requests import submit
    from tests.conftest import SUPPORT_STAFF

    with demo.session() as s:
        made = [
            submit(
                s, demo.policy(), demo.app_engine, kind="access", subject_id=subject,
                requested_by=SUPPORT_STAFF, execute=True,
            ).request.reference
            for subject in ("11", "12")
        ]  # fmt: skip
    with SlackStub() as stub:
        env = {"SLACK_BOT_TOKEN": "xoxb-test-token", "SLACK_API_URL": stub.base_url}
        dry, done = dry_then_execute(demo, "alert-dsar-deadlines", "--within-days", "40", env=env)
    assert dry["alert"]["status"] == "due" and done["alert"]["status"] == "posted"
    assert dry["alert"]["references"] == done["alert"]["references"]
    assert set(made) <= set(done["alert"]["references"])
    assert counts(dry["alert"]["counts"]) == counts(done["alert"]["counts"])
    (posted,) = [c for c in stub.calls if c.method == "chat.postMessage"]
    assert all(reference in str(posted.params) for reference in made)


def test_the_scan_stores_what_its_dry_run_found(demo: Deployment) -> None:
    done = same_counts(demo, "scan-personal-data")
    assert done["systems"], done


def test_submit_review_and_deliver_do_what_their_dry_runs_said(demo: Deployment) -> None:
    """A request logged, approved and its export emailed from the command line: each dry run
    says what its execution then does, and changes nothing (the execution finds it new)."""
    submitted = same_counts(
        demo, "submit-dsar", "--kind", "access", "--subject-id", "5",
        "--requested-by", "support@example.com",
    )  # fmt: skip
    assert submitted["created"] is True and submitted["status"] == "pending"
    reference = submitted["reference"]
    assert reference, "the execution gives the reference the dry run could not"

    reviewed = same_counts(demo, "review-dsar", reference, "--approve", "--reviewer", OFFICER)
    assert reviewed["status"] == "approved"
    ok(demo.run("process-dsar-requests", "--execute"))  # builds the export (auto_deliver off)

    delivered = same_counts(demo, "deliver-dsar", reference, "--by", "support@example.com")
    assert delivered["reference"] == reference and delivered["delivery_id"]
    mails = sorted((demo.dir / "var" / "outbox").glob("*.eml"))
    assert len(mails) == 2, "one link and one code, from the execution only"
