"""Purge forgets the bookkeeping, not the decisions: the ledger, cool-off and figures that hold."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from sqlalchemy import func, inspect, select

from compliance.reports.stats import bucket_progress, deletions_per_week
from compliance.store.engines import migrate
from compliance.store.models import ComplianceProfile, DecisionLedger, DeletionRecord
from tests.conftest import DEMO_POLICY, Backend, Deployment, fill_demo, ok, ok_stdout

BUCKET = "closed_accounts"
OFFICER = "dpo@example.com"


def decide_and_apply(d: Deployment) -> dict[str, int]:
    """Three batches: one accepted with one record excluded, one rejected, one left pending."""
    ok(d.run("create-deletion-records", "--bucket", BUCKET, "--execute"))
    out = ok_stdout(
        d.run(
            "--json", "create-deletion-batches", "--bucket", BUCKET, "--max-batch-size", "20",
            "--execute",
        )
    )  # fmt: skip
    accepted, rejected = json.loads(out)["batch_ids"][:2]
    with d.session() as s:
        excluded = s.scalars(
            select(DeletionRecord.id).where(DeletionRecord.deletion_batch_id == accepted)
        ).first()
    ok(
        d.run(
            "review-batch", str(accepted), "--accept", "--reviewer", OFFICER,
            "--exclude", f"{excluded}:kept for now", "--execute",
        )
    )  # fmt: skip
    ok(
        d.run(
            "review-batch", str(rejected), "--reject", "--reviewer", OFFICER,
            "--reason", "wrong rule", "--execute",
        )
    )  # fmt: skip
    ok(d.run("apply-deletions", "--bucket", BUCKET, "--execute"))
    return {"erased": 19, "excluded": 1, "rejected": 20}


def figures(d: Deployment) -> tuple[pd.DataFrame, pd.DataFrame]:
    with d.session() as s:
        return bucket_progress(s), deletions_per_week(s)


def test_progress_figures_are_identical_before_and_after_purge(demo: Deployment) -> None:
    decide_and_apply(demo)
    buckets_before, weekly_before = figures(demo)
    assert buckets_before.set_index("bucket").loc[BUCKET, "applied"] == 19
    assert weekly_before["applied"].sum() == 19 + 0  # the demo applied nothing else

    ok(demo.run("purge-compliance-data", "--bucket", BUCKET, "--execute"))

    with demo.session() as s:
        assert s.scalar(select(func.count()).where(DeletionRecord.bucket == BUCKET)) > 0
        assert (
            s.scalar(
                select(func.count()).where(
                    DeletionRecord.bucket == BUCKET, DeletionRecord.deletion_batch_id.in_([1, 2])
                )
            )
            == 0
        )
    buckets_after, weekly_after = figures(demo)
    pd.testing.assert_frame_equal(buckets_after, buckets_before)
    pd.testing.assert_frame_equal(weekly_after, weekly_before)
    # A second purge finds nothing more to fold in: still the same figures.
    ok(demo.run("purge-compliance-data", "--bucket", BUCKET, "--execute"))
    pd.testing.assert_frame_equal(figures(demo)[0], buckets_before)


def test_purge_keeps_a_ledger_of_decisions_without_email_or_name(demo: Deployment) -> None:
    expected = decide_and_apply(demo)
    ok(demo.run("purge-compliance-data", "--bucket", BUCKET, "--execute"))

    with demo.session() as s:
        counts = dict(
            s.execute(
                select(DecisionLedger.decision, func.count()).group_by(DecisionLedger.decision)
            ).all()
        )
        rejected = s.scalars(
            select(DecisionLedger).where(DecisionLedger.decision == "rejected")
        ).first()
        # Every ledger entry still names a profile: purge keeps the profiles it names.
        orphans = s.scalar(
            select(func.count())
            .select_from(DecisionLedger)
            .outerjoin(ComplianceProfile)
            .where(ComplianceProfile.id.is_(None))
        )
    assert counts == expected
    assert (rejected.reviewer, rejected.bucket) == (OFFICER, BUCKET)
    assert orphans == 0
    columns = {c["name"] for c in inspect(demo.engine).get_columns("decision_ledger")}
    assert not {"email", "subject_email", "name", "full_name", "subject_id"} & columns


def test_rejected_subjects_wait_out_the_buckets_cool_off(demo: Deployment) -> None:
    decide_and_apply(demo)
    ok(demo.run("purge-compliance-data", "--bucket", BUCKET, "--execute"))

    out = ok_stdout(demo.run("create-deletion-records", "--bucket", BUCKET))
    # The 20 of the rejected batch and the 1 excluded from the accepted one, counted apart.
    assert (
        "  20 held back: rejected in this bucket within the last 90 days "
        "(rejection_cooloff_days)\n"
        "[DRY RUN]   1 held back: excluded from a batch in this bucket within the last 90 days "
        "(rejection_cooloff_days)\n"
    ) in out
    demo.write_policy(
        DEMO_POLICY.replace(
            "[buckets.closed_accounts]", "[buckets.closed_accounts]\nrejection_cooloff_days = 0"
        )
    )
    out = ok_stdout(demo.run("--json", "create-deletion-records", "--bucket", BUCKET, "--execute"))
    assert json.loads(out)["cooling_off"] == 0
    assert json.loads(out)["created"] == 21


def test_one_database_counts_rejected_and_excluded_apart_too(
    backend: Backend, tmp_path: Path
) -> None:
    """Both URLs one database: the rules feed the records in-database, held back alike."""
    url = backend.url("shared")
    d = Deployment(tmp_path, tmp_path / "compliance.toml", url, url, backend.name)
    d.write_policy(DEMO_POLICY)
    migrate(d.engine)
    fill_demo(d, users_count=400, seed=7)
    decide_and_apply(d)
    ok(d.run("purge-compliance-data", "--bucket", BUCKET, "--execute"))
    dry = json.loads(ok_stdout(d.run("--json", "create-deletion-records", "--bucket", BUCKET)))
    assert (dry["cooling_off"], dry["rejected_recently"], dry["excluded_recently"]) == (21, 20, 1)
    d.dispose()
