"""retention-cleanup: rows older than each category's days go, in chunks; nothing else moves."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import DateTime, MetaData, func, select, update
from sqlalchemy.orm import Session

from compliance.demo.generate import support_tickets, workflow_logs
from compliance.errors import ConfigError
from compliance.ops.retention import retention_cleanup
from compliance.policy.model import RetentionEntry
from compliance.store.models import AuditEvent, JobRun, utcnow
from tests.conftest import DEMO_POLICY, Deployment, fill_demo

EXTRA = """
[retention.old_tickets]
table = "support_tickets"
timestamp = "updated_at"
days = 100

[retention.ghost]
table = "no_such_table"
timestamp = "created_at"
days = 1

[retention.typo]
table = "activity_logs"
timestamp = "created_on"
days = 1
"""
RETAINED = ("invoices", "payments")


@pytest.fixture
def aged(deployment: Deployment) -> Deployment:
    """Demo data whose log and ticket ages sit far from the cut-offs: 200 days old or 10 days."""
    deployment.write_policy(DEMO_POLICY + EXTRA)
    fill_demo(deployment, users_count=60, seed=11)
    now = utcnow().astimezone(UTC).replace(tzinfo=None)
    old, recent = now - timedelta(days=200), now - timedelta(days=10)
    with deployment.app_engine.begin() as conn:
        for table, column in ((workflow_logs, "created_at"), (support_tickets, "updated_at")):
            conn.execute(update(table).values({column: recent}))
            conn.execute(update(table).where(table.c.id % 3 == 0).values({column: old}))
        # A ticket never updated is never old, whatever its neighbours' ages.
        conn.execute(
            update(support_tickets).where(support_tickets.c.id == 3).values(updated_at=None)
        )
    return deployment


def counts(d: Deployment) -> dict[str, int]:
    with d.app_engine.connect() as conn:
        return {
            "logs": conn.scalar(select(func.count()).select_from(workflow_logs)),
            "old_logs": conn.scalar(select(func.count()).where(workflow_logs.c.id % 3 == 0)),
            "tickets": conn.scalar(select(func.count()).select_from(support_tickets)),
            "old_tickets": conn.scalar(
                select(func.count()).where(support_tickets.c.id % 3 == 0, support_tickets.c.id != 3)
            ),
        }


def test_a_dry_run_counts_expired_rows_per_category_and_changes_nothing(aged: Deployment) -> None:
    before = counts(aged)
    checksum = aged.checksum("workflow_logs", "support_tickets")

    result = aged.run("retention-cleanup")

    assert result.exit_code == 0, result.output
    assert (
        f"[DRY RUN]   workflow_logs: {before['old_logs']} rows of workflow_logs older than 90 days"
        in result.output
    )
    assert (
        f"[DRY RUN]   old_tickets: {before['old_tickets']} rows of support_tickets older than "
        "100 days" in result.output
    )
    assert "Re-run with --execute" in result.output
    assert aged.checksum("workflow_logs", "support_tickets") == checksum


def test_cleanup_deletes_only_expired_rows_with_one_audit_event_per_category(
    aged: Deployment,
) -> None:
    before = counts(aged)
    retained = aged.checksum(*RETAINED)

    result = aged.run("--json", "retention-cleanup", "--chunk-size", "7", "--execute")

    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rows"] == before["old_logs"] + before["old_tickets"]
    after = counts(aged)
    assert after["logs"] == before["logs"] - before["old_logs"]
    assert after["tickets"] == before["tickets"] - before["old_tickets"]
    assert after["old_logs"] == 0
    assert [r["id"] for r in aged.app_rows("support_tickets", "id = 3")] == [3]
    assert aged.checksum(*RETAINED) == retained
    with aged.session() as s:
        events = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "retention.cleaned_up")
        ).all()
    assert {(e.target_id, e.details["rows_deleted"], e.actor) for e in events} == {
        ("workflow_logs", before["old_logs"], "test-runner"),
        ("old_tickets", before["old_tickets"], "test-runner"),
    }

    again = aged.run("--json", "retention-cleanup", "--execute")
    assert json.loads(again.stdout)["rows"] == 0


def test_a_missing_table_or_column_is_a_warning_and_that_entry_is_skipped(
    aged: Deployment,
) -> None:
    result = aged.run("retention-cleanup", "--execute")

    assert result.exit_code == 0, result.output
    assert "ghost: skipped: retention.ghost.table: no table 'no_such_table'" in result.output
    assert (
        "typo: skipped: retention.typo.timestamp: table 'activity_logs' has no column "
        "'created_on'" in result.output
    )
    assert counts(aged)["old_logs"] == 0  # the good entries still ran


def test_one_failing_category_does_not_stop_the_others_and_exits_1(aged: Deployment) -> None:
    # Runs are the parents of logs: deleting them breaks a foreign key on both databases.
    aged.write_policy(
        DEMO_POLICY.replace(
            "[retention.workflow_logs]",
            '[retention.runs]\ntable = "workflow_runs"\ntimestamp = "started_at"\ndays = 0\n\n'
            "[retention.workflow_logs]",
        )
    )
    runs_before = len(aged.app_rows("workflow_runs"))

    result = aged.run("retention-cleanup", "--execute")

    assert result.exit_code == 1
    assert "runs: failed:" in result.output
    assert len(aged.app_rows("workflow_runs")) == runs_before
    assert counts(aged)["old_logs"] == 0
    with aged.session() as s:
        run = s.scalars(select(JobRun).where(JobRun.job == "retention-cleanup")).one()
        failed = s.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "retention.cleaned_up", AuditEvent.target_id == "runs"
            )
        ).one()
    assert run.status == "failed"
    assert failed.details["rows_deleted"] == 0 and failed.details["error"]


def test_an_unknown_category_is_exit_2_naming_the_known_ones(aged: Deployment) -> None:
    result = aged.run("retention-cleanup", "--category", "nope")

    assert result.exit_code == 2
    known = "ghost, job_runs, old_tickets, typo, workflow_logs"
    assert f"unknown retention category 'nope' (known: {known})" in result.output


def test_a_retain_table_is_refused_even_in_a_hand_built_policy(aged: Deployment) -> None:
    policy = aged.policy()
    sneaky = dataclasses.replace(
        policy, retention={"bills": RetentionEntry("bills", "invoices", "issued_at", 0)}
    )
    invoices = aged.checksum("invoices")

    with Session(aged.engine) as s, pytest.raises(ConfigError, match="'invoices' is a retain"):
        retention_cleanup(s, sneaky, aged.app_engine, actor="t", execute=True)

    assert aged.checksum("invoices") == invoices


def test_the_demo_dates_nothing_after_the_moment_it_was_made(deployment: Deployment) -> None:
    """A row from the future outlives "older than 0 days" and every age check after it."""
    fill_demo(deployment, users_count=400, seed=7)
    made = datetime.now(UTC).replace(tzinfo=None)  # the demo's now is before this
    meta = MetaData()
    meta.reflect(deployment.app_engine)
    with deployment.app_engine.connect() as conn:
        latest = {
            f"{table.name}.{column.name}": conn.scalar(select(func.max(column)))
            for table in meta.sorted_tables
            for column in table.columns
            if isinstance(column.type, DateTime)
        }
    after = {name: when for name, when in latest.items() if when is not None and when > made}
    assert latest and not after, after
