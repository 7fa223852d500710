"""Bad input: a one-line error naming what is wrong, exit 2, and nothing changed."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from compliance.deletion.exclusions import exclude_records
from compliance.deletion.review import review_batch
from compliance.errors import InvalidInput
from compliance.free_text import MAX_FREE_TEXT
from compliance.store.models import AuditEvent, DeletionBatch, DeletionRecord
from tests.conftest import DEMO_POLICY, DPO, Deployment


def state(d: Deployment) -> tuple:
    with d.session() as s:
        records = s.execute(
            select(
                DeletionRecord.id,
                DeletionRecord.accepted_for_deletion,
                DeletionRecord.deletion_applied_at,
                DeletionRecord.is_manually_reviewed,
            ).order_by(DeletionRecord.id)
        ).all()
        batches = s.execute(
            select(DeletionBatch.id, DeletionBatch.reviewed_status).order_by(DeletionBatch.id)
        ).all()
        events = s.scalar(select(func.count()).select_from(AuditEvent))
    return tuple(records), tuple(batches), events, d.checksum(*d.policy().tables)


@pytest.fixture
def queue(demo: Deployment) -> Deployment:
    """Open records in two batches of the closed_accounts bucket, nothing reviewed yet."""
    demo.run("create-deletion-records", "--bucket", "closed_accounts", "--execute")
    demo.run(
        "create-deletion-batches", "--bucket", "closed_accounts", "--max-batch-size", "20",
        "--execute",
    )  # fmt: skip
    return demo


#: Accepting batch 1: the start of every review-batch line below that adds one option.
ACCEPT_1 = ["review-batch", "1", "--accept", "--reviewer", "dpo@example.com"]


def assert_refused(d: Deployment, args: list[str], message: str) -> None:
    before = state(d)
    result = d.run(*args)
    assert result.exit_code == 2, result.output
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(error_lines) == 1, result.stderr
    assert message in error_lines[0]
    assert "Traceback" not in result.output
    assert state(d) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["create-deletion-records", "--bucket", "nope", "--execute"],
            "unknown bucket 'nope' (known: closed_accounts, dsar_erasure, inactive_accounts",
        ),
        (["create-deletion-batches", "--bucket", "nope", "--execute"], "unknown bucket 'nope'"),
        (
            ["create-deletion-records", "--bucket", "dsar_erasure", "--execute"],
            "bucket 'dsar_erasure' has no rules: its records come from erasure requests",
        ),
        (
            [
                "create-deletion-batches",
                "--bucket",
                "closed_accounts",
                "--max-batch-size",
                "0",
                "--execute",
            ],
            "--max-batch-size must be from 1 to 100000, got 0",
        ),
        (["apply-deletions", "--bucket", "nope", "--execute"], "unknown bucket 'nope'"),
        (["purge-compliance-data", "--bucket", "nope", "--execute"], "unknown bucket 'nope'"),
        (
            ["review-batch", "999999", "--accept", "--reviewer", "dpo@example.com", "--execute"],
            "no deletion batch with id 999999",
        ),
        (
            ["review-batch", "1", "--reject", "--reviewer", "dpo@example.com", "--execute"],
            "rejecting a batch needs a --reason",
        ),
        (
            [
                "review-batch",
                "1",
                "--reject",
                "--reviewer",
                "dpo@example.com",
                "--reason",
                "  ",
                "--execute",
            ],
            "rejecting a batch needs a --reason",
        ),
        (
            ["review-batch", "1", "--accept", "--reviewer", "dpo", "--execute"],
            "--reviewer must be an email address, got 'dpo'",
        ),
        ([*ACCEPT_1, "--exclude", "999999:kept", "--execute"], "record 999999 is not in batch 1"),
        (
            [*ACCEPT_1, "--exclude", "1", "--execute"],
            "--exclude: record 1 needs a note saying why it is kept",
        ),
        ([*ACCEPT_1, "--exclude", "abc", "--execute"], "'abc' is not a record id"),
        (
            [*ACCEPT_1, "--exclude", "1:kept\x07", "--execute"],
            "--exclude holds a control character",
        ),
        (["review-batch", "1", "--reviewer", "dpo@example.com"], "give --accept or --reject"),
        (
            ["apply-deletions", "--chunk-size", "0", "--execute"],
            "--chunk-size must be from 1 to 10000, got 0",
        ),
    ],
)
def test_bad_input_is_refused_with_exit_2_and_changes_nothing(
    queue: Deployment, args: list[str], message: str
) -> None:
    assert_refused(queue, args, message)


def test_a_second_review_is_refused_naming_who_decided_and_when(queue: Deployment) -> None:
    two_officers = '["dpo@example.com", "ann@example.com", "bob@example.com"]'
    queue.write_policy(
        DEMO_POLICY.replace(
            'compliance_officer = ["dpo@example.com"]', f"compliance_officer = {two_officers}"
        )
    )
    first = queue.run("review-batch", "1", "--accept", "--reviewer", "ann@example.com", "--execute")
    assert first.exit_code == 0, first.output
    assert_refused(
        queue,
        ["review-batch", "1", "--reject", "--reviewer", "bob@example.com", "--reason", "no",
         "--execute"],
        "batch 1 was already accepted by ann@example.com at ",
    )  # fmt: skip


def test_a_bad_policy_file_stops_every_job_before_it_touches_data(queue: Deployment) -> None:
    queue.run("review-batch", "1", "--accept", "--reviewer", "dpo@example.com", "--execute")
    before = state(queue)
    queue.write_policy(DEMO_POLICY.replace('tables = ["support_tickets"]', 'tables = ["invoices"]'))
    result = queue.run("apply-deletions", "--execute")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "Error: buckets.stale_support_tickets.tables[0]: 'invoices' is a retain table and can "
        "never be erased"
    )
    queue.write_policy(DEMO_POLICY)
    assert state(queue) == before


def test_a_policy_naming_a_missing_column_is_refused(queue: Deployment) -> None:
    queue.write_policy(DEMO_POLICY.replace('phone = "null"', 'mobile = "null"'))
    result = queue.run("create-deletion-records", "--bucket", "closed_accounts", "--execute")
    assert result.exit_code == 2
    assert "tables.users.anonymize.mobile: table 'users' has no column 'mobile'" in result.stderr


def test_a_missing_policy_file_is_named(queue: Deployment) -> None:
    result = queue.run("apply-deletions", env={"COMPLIANCE_CONFIG": "/nonexistent/compliance.toml"})
    assert result.exit_code == 2
    assert "policy file /nonexistent/compliance.toml not found" in result.stderr


def test_invalid_toml_is_named(queue: Deployment) -> None:
    queue.policy_path.write_text("[tables\n")
    result = queue.run("apply-deletions")
    assert result.exit_code == 2
    assert "is not valid TOML" in result.stderr


def test_an_uninitialised_compliance_database_says_what_to_run(demo: Deployment) -> None:
    result = demo.run(
        "create-deletion-records", "--bucket", "closed_accounts",
        env={"COMPLIANCE_DATABASE_URL": f"sqlite:///{demo.dir / 'fresh.db'}"},
    )  # fmt: skip
    assert result.exit_code == 2
    assert "run 'python -m jobs init-db' first" in result.stderr


def test_an_exclusion_needs_a_note_whichever_screen_it_comes_from(queue: Deployment) -> None:
    """The library refuses it, so the dashboard, the CLI and any caller meet one rule."""
    with queue.session() as s:
        record_id = s.scalar(
            select(DeletionRecord.id).where(DeletionRecord.deletion_batch_id == 1).limit(1)
        )
    before = state(queue)
    for note, message in (
        ("   ", f"exclude: record {record_id} needs a note saying why it is kept"),
        ("x" * (MAX_FREE_TEXT + 1), f"exclude is longer than {MAX_FREE_TEXT} characters"),
        ("kept\x00", "exclude holds a control character"),
    ):
        with queue.session() as s, pytest.raises(InvalidInput, match=message):
            exclude_records(s, 1, {record_id: note}, actor=DPO)
        with queue.session() as s, pytest.raises(InvalidInput, match=message):
            review_batch(s, 1, "accept", reviewer=DPO, exclude={record_id: note}, execute=True)
    assert state(queue) == before
    with queue.session() as s:
        exclude_records(s, 1, {record_id: "  court order 12/26  "}, actor=DPO)
        assert s.get(DeletionRecord, record_id).review_note == "court order 12/26"
