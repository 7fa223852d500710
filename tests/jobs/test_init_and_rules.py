"""init-db on both databases, the demo set-up, and what the bucket rules select."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, inspect, select, text

from compliance.deletion.rules import iter_due_subjects
from compliance.reports.stats import batch_progress, bucket_progress
from compliance.store.models import DeletionBatch, DeletionRecord, ErasureTask
from tests.conftest import Backend, Deployment, policy_text
from tests.shop import SHOP_POLICY, fill_shop

CONTRACT_TABLES = {
    "compliance_profiles",
    "deletion_records",
    "deletion_batches",
    "dsar_requests",
    "dsar_deliveries",
    "job_runs",
    "audit_events",
}


def test_init_db_creates_every_table_and_a_rerun_changes_nothing(
    backend: Backend, tmp_path: Path
) -> None:
    url = backend.url("compliance")
    policy = tmp_path / "compliance.toml"
    policy.write_text(policy_text(SHOP_POLICY, url, backend.url("app")))
    d = Deployment(tmp_path, policy, url, "", backend.name)
    first = d.run("init-db", "--json")
    assert first.exit_code == 0, first.output
    assert set(inspect(d.engine).get_table_names()) >= CONTRACT_TABLES
    again = d.run("init-db")
    assert again.exit_code == 0
    assert "at revision" in again.output
    d.dispose()


def test_init_db_demo_gives_a_new_user_real_work_to_review(
    backend: Backend, tmp_path: Path
) -> None:
    policy = tmp_path / "fresh" / "compliance.toml"
    d = Deployment(tmp_path, policy, backend.url("compliance"), backend.url("app"), backend.name)
    env = {
        "COMPLIANCE_DATABASE_URL": d.database_url,
        "COMPLIANCE_APP_DATABASE_URL": d.app_url,
    }
    result = d.run("init-db", "--demo", "--demo-users", "600", env=env)
    assert result.exit_code == 0, result.output
    assert policy.exists(), "the demo policy file is written for the user"
    with d.app_engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM users")) == 600
        assert conn.scalar(text("SELECT count(*) FROM invoices")) > 0
    with d.session() as s:
        pending = s.scalar(select(func.count()).where(DeletionBatch.reviewed_status == "pending"))
        assert pending > 0
        untouched = s.scalar(select(func.count()).where(DeletionRecord.bucket == "closed_accounts"))
        assert untouched == 0, "closed_accounts is left for the README walk-through"
        fan_out = dict(
            s.execute(
                select(ErasureTask.system, func.count())
                .where(ErasureTask.status == ("pending"))
                .group_by(ErasureTask.system)
            ).all()
        )
        assert fan_out.get("newsletter", 0) > 0, "one erasure waits for a person on first run"
        done = set(s.scalars(select(ErasureTask.system).where(ErasureTask.status == "done")))
        assert {"app_database", "billing"} <= done
    with d.billing_engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM billing_customers")) > 0
    rerun = d.run("init-db", "--demo", env=env)
    assert rerun.exit_code == 0
    assert "kept as it is" in rerun.output
    d.dispose()


def test_a_null_timestamp_never_counts_as_old(backend: Backend, tmp_path: Path) -> None:
    from tests.conftest import make_deployment

    d = make_deployment(backend, tmp_path / "shop", SHOP_POLICY)
    fill_shop(d.app_engine, customers_count=6)
    with d.app_engine.begin() as conn:
        conn.execute(text("UPDATE customers SET last_seen = NULL WHERE code = 'C-0002'"))
    bucket = d.policy().buckets["lapsed_customers"]
    due = [k for chunk in iter_due_subjects(d.datamap(), bucket, datetime.now(UTC)) for k in chunk]
    assert sorted(due) == ["C-0000", "C-0004"]
    d.dispose()


def test_a_subject_is_due_only_if_every_rule_selects_it(demo: Deployment) -> None:
    bucket = demo.policy().buckets["stale_support_tickets"]
    now = datetime.now(UTC)
    due = {k for chunk in iter_due_subjects(demo.datamap(), bucket, now) for k in chunk}
    cutoff = (now - timedelta(days=365)).replace(tzinfo=None)
    expected = set()
    users = {u["id"]: u for u in demo.app_rows("users")}
    tickets: dict[int, list] = {}
    for t in demo.app_rows("support_tickets"):
        tickets.setdefault(t["user_id"], []).append(t["updated_at"])
    for uid, stamps in tickets.items():
        newest = max(_as_datetime(s) for s in stamps)
        if newest < cutoff and users[uid]["closed_at"] is not None:
            expected.add(str(uid))
    assert due == expected
    assert len(due) > 0


def _as_datetime(value: object) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def test_progress_figures_follow_a_batch_through_review_and_apply(demo: Deployment) -> None:
    demo.run("create-deletion-records", "--bucket", "closed_accounts", "--execute")
    demo.run(
        "create-deletion-batches", "--bucket", "closed_accounts", "--max-batch-size", "10",
        "--execute",
    )  # fmt: skip
    demo.run("review-batch", "1", "--accept", "--reviewer", "dpo@example.com",
             "--exclude", "1:kept", "--execute")  # fmt: skip
    demo.run("review-batch", "2", "--reject", "--reviewer", "dpo@example.com", "--reason", "no",
             "--execute")  # fmt: skip
    with demo.session() as s:
        before = batch_progress(s, batch_ids=[1]).iloc[0]
        assert (before.total, before.accepted, before.excluded, before.pending) == (10, 9, 1, 9)
    demo.run("apply-deletions", "--execute")
    with demo.session() as s:
        after = batch_progress(s, batch_ids=[1, 2]).set_index("batch_id")
        buckets = bucket_progress(s).set_index("bucket")
    assert after.loc[1, "completed"] == 9 and after.loc[1, "pending"] == 0
    assert after.loc[2, "reviewed_status"] == "rejected" and after.loc[2, "completed"] == 0
    row = buckets.loc["closed_accounts"]
    assert (row.batches_accepted, row.batches_rejected) == (1, 1)
    assert row.applied == 9
    assert row.kept == 11
    assert row.awaiting_review == row.records - 20
