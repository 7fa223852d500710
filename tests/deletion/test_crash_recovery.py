"""A job killed with SIGKILL halfway loses nothing: the rerun finishes every record exactly once."""

from __future__ import annotations

import signal
import time

import pytest
from sqlalchemy import func, select

from compliance.audit.chain import verify_chain
from compliance.deletion.batches import create_deletion_batches
from compliance.deletion.records import create_deletion_records
from compliance.deletion.review import review_batch
from compliance.policy.strategies import HashStrategy
from compliance.store.models import AuditEvent, ComplianceProfile, DeletionBatch, DeletionRecord
from tests.conftest import DEMO_POLICY, DPO, Deployment, fill_demo

USERS = 2500
EVERYONE = """
[buckets.everyone]
description = "Every account (a test of scale, not a real rule)"
tables = ["users", "workflows", "api_tokens", "activity_logs", "support_tickets"]
rules = [{ sql = "SELECT id FROM users" }]
"""


@pytest.fixture
def accepted(deployment: Deployment) -> Deployment:
    """A few thousand accepted records, due now, in bucket 'everyone'."""
    deployment.write_policy(DEMO_POLICY + EVERYONE)
    fill_demo(deployment, users_count=USERS, seed=11)
    with deployment.session() as s:
        create_deletion_records(s, deployment.datamap(), "everyone", actor="t", execute=True)
        batches = create_deletion_batches(
            s, deployment.policy(), "everyone", actor="t", execute=True, max_batch_size=500
        )
        for batch_id in batches.batch_ids:
            review_batch(s, batch_id, "accept", reviewer=DPO, execute=True)
    return deployment


def applied_count(d: Deployment) -> int:
    with d.session() as s:
        return s.scalar(select(func.count()).where(DeletionRecord.deletion_applied_at.is_not(None)))


def assert_everything_applied_exactly_once(
    d: Deployment, emails: dict[int, str], billing: str
) -> None:
    with d.session() as s:
        assert (
            s.scalar(select(func.count()).where(DeletionRecord.deletion_applied_at.is_(None))) == 0
        )
        audited = [
            e.details["applied"]
            for e in s.scalars(
                select(AuditEvent).where(AuditEvent.action == "deletion_records.applied")
            )
        ]
        assert sum(audited) == USERS
        assert verify_chain(s).ok
        assert s.scalar(select(func.count()).select_from(DeletionBatch)) == USERS // 500
    users = d.app_rows("users")
    assert len(users) == USERS
    # Hashed once, not twice: the rerun's second pass over a chunk left values alone.
    assert all(u["email"] == HashStrategy().transform(emails[u["id"]]) for u in users)
    assert all(u["full_name"] is None for u in users)
    assert d.app_rows("workflows") == [] and d.app_rows("workflow_logs") == []
    assert d.checksum("invoices", "payments") == billing


def test_killed_between_the_two_databases_the_rerun_finishes_exactly_once(
    accepted: Deployment,
) -> None:
    emails = {u["id"]: u["email"] for u in accepted.app_rows("users")}
    billing = accepted.checksum("invoices", "payments")
    job = accepted.run_process(
        "apply-deletions", "--execute", "--chunk-size", "100",
        env={"COMPLIANCE_FAILPOINT": "apply.between_databases:5"},
    )  # fmt: skip
    job.communicate(timeout=120)
    assert job.returncode == -signal.SIGKILL
    # Five chunks erased in the application database, only four recorded as applied.
    assert applied_count(accepted) == 400
    with accepted.session() as s:
        fifth_chunk = s.scalars(
            select(ComplianceProfile.subject_id)
            .join(DeletionRecord)
            .order_by(DeletionRecord.id)
            .offset(400)
            .limit(100)
        ).all()
    erased_unrecorded = ", ".join(fifth_chunk)
    assert accepted.app_rows("activity_logs", f"user_id IN ({erased_unrecorded})") == []

    rerun = accepted.run_process("apply-deletions", "--execute", "--chunk-size", "100")
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert "Erased 2100 of 2100 due records" in out and "  0 failed" in out
    assert_everything_applied_exactly_once(accepted, emails, billing)


def test_killed_at_a_random_moment_the_rerun_finishes_exactly_once(accepted: Deployment) -> None:
    emails = {u["id"]: u["email"] for u in accepted.app_rows("users")}
    billing = accepted.checksum("invoices", "payments")
    job = accepted.run_process("apply-deletions", "--execute", "--chunk-size", "50")
    deadline = time.monotonic() + 120
    # Frozen (SIGSTOP) wherever it is while its progress is read, so a busy machine that
    # delays this loop cannot let it finish between two looks; killed at the first look
    # past 300 records, at whatever point it was frozen.
    while job.poll() is None and time.monotonic() < deadline:
        job.send_signal(signal.SIGSTOP)
        if applied_count(accepted) >= 300:
            break
        job.send_signal(signal.SIGCONT)
        time.sleep(0.02)
    job.send_signal(signal.SIGKILL)
    job.communicate(timeout=60)
    assert job.returncode == -signal.SIGKILL
    assert 0 < applied_count(accepted) < USERS, "the job was not stopped halfway"

    rerun = accepted.run_process("apply-deletions", "--execute", "--chunk-size", "50")
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert_everything_applied_exactly_once(accepted, emails, billing)


@pytest.mark.parametrize("spec", ["commit.before:x", "commit.before:1", "apply.between_databases"])
def test_failpoints_are_inert_outside_the_test_suite(demo: Deployment, spec: str) -> None:
    """A deployment with COMPLIANCE_FAILPOINT set (however spelt) runs its jobs normally."""
    from compliance import failpoints

    demo.run("create-deletion-records", "--bucket", "closed_accounts", "--execute")
    job = demo.run_process(
        "create-deletion-batches", "--bucket", "closed_accounts", "--execute",
        env={"COMPLIANCE_FAILPOINT": spec, failpoints.SUITE_ENV: None},  # type: ignore[dict-item]
    )  # fmt: skip
    _, err = job.communicate(timeout=120)
    assert job.returncode == 0, err
    assert "Traceback" not in err


def test_a_misspelt_failpoint_in_the_suite_is_no_traceback(demo: Deployment) -> None:
    job = demo.run_process(
        "create-deletion-records", "--bucket", "closed_accounts", "--execute",
        env={"COMPLIANCE_FAILPOINT": "commit.before:x"},
    )  # fmt: skip
    _, err = job.communicate(timeout=120)
    assert job.returncode == 0 and "Traceback" not in err, err
