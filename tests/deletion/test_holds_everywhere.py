"""Holds win everywhere: every path that erases asks the one hold check.

Issue 25: retention-cleanup erased held subjects' old ``workflow_logs`` (a table reached
through ``via``): 13 and 8 rows before, 0 after. Apply, DSAR erasure, retention by
``subject_column`` and replay-erasures have their legal-hold tests in test_legal_holds.py and
test_replay_erasures.py; here the ``via`` case, and the second kind of hold, a data
subject's restriction of processing (GDPR Art. 18): one entry of ``HOLD_KINDS``, honoured by
every path without more code.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import MetaData, func, select

from compliance.store.models import DeletionRecord, DsarRequest
from tests.conftest import DEMO_POLICY, Deployment, ok, ok_stdout
from tests.deletion.test_legal_holds import (
    BUCKET,
    OFFICER,
    batch_subjects,
    hold,
    records_and_batches,
)
from tests.deletion.test_replay_erasures import backup, restore

ALL_OLD = DEMO_POLICY.replace(
    '[retention.workflow_logs]\ntable = "workflow_logs"\ntimestamp = "created_at"\ndays = 90',
    '[retention.workflow_logs]\ntable = "workflow_logs"\ntimestamp = "created_at"\ndays = 0\n\n'
    '[retention.activity]\ntable = "activity_logs"\ntimestamp = "created_at"\ndays = 0',
)
assert ALL_OLD != DEMO_POLICY


def logs_by_subject(d: Deployment, older_than_days: int = 0) -> dict[str, int]:
    """Per subject, their workflow_logs (through workflow_runs and workflows) that old."""
    meta = MetaData()
    meta.reflect(d.app_engine, only=["workflow_logs", "workflow_runs", "workflows"])
    logs, runs, flows = (meta.tables[n] for n in ("workflow_logs", "workflow_runs", "workflows"))
    cutoff = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=older_than_days)
    query = (
        select(flows.c.user_id, func.count())
        .select_from(logs)
        .join(runs, runs.c.id == logs.c.workflow_run_id)
        .join(flows, flows.c.id == runs.c.workflow_id)
        .where(logs.c.created_at < cutoff)
        .group_by(flows.c.user_id)
    )
    with d.app_engine.connect() as conn:
        return {str(user): n for user, n in conn.execute(query)}


def test_retention_keeps_held_subjects_rows_in_tables_reached_through_via(
    demo: Deployment,
) -> None:
    old = logs_by_subject(demo, 91)
    held = sorted(old, key=lambda s: -old[s])[:2]  # the two with most old logs
    assert all(old[s] > 0 for s in held)
    for subject in held:
        hold(demo, subject)
    kept = {s: logs_by_subject(demo)[s] for s in held}

    dry = ok(demo.run("retention-cleanup", "--category", "workflow_logs"))
    assert "workflow_logs: " in dry and "old rows kept: subjects on legal hold" in dry
    ok(demo.run("retention-cleanup", "--category", "workflow_logs", "--execute"))

    after = logs_by_subject(demo)
    assert {s: after.get(s, 0) for s in held} == kept  # untouched, old ones included
    still_old = logs_by_subject(demo, 91)
    assert set(still_old) == set(held)  # everybody else's old logs are gone


@pytest.fixture
def restrict(demo: Deployment) -> Callable[[str], None]:
    """A restriction of processing as a data subject asks it: logged, approved, placed."""

    def place(subject: str) -> None:
        logged = demo.run(
            "--json", "submit-dsar", "--kind", "restriction", "--subject-id", subject,
            "--requested-by", "support@example.com", "--execute",
        )  # fmt: skip
        ok(logged)
        out = json.loads(logged.stdout)
        reference = out["reference"]
        ok(demo.run("review-dsar", reference, "--approve", "--reviewer", OFFICER, "--execute"))
        ok(demo.run("process-dsar-requests", "--execute"))

    return place


def test_a_new_kind_of_hold_is_honoured_by_every_path_that_erases(
    demo: Deployment, restrict: Callable[[str], None]
) -> None:
    saved = backup(demo)
    (batch_id,) = records_and_batches(demo)[:1]
    subjects = batch_subjects(demo, batch_id)
    logs = logs_by_subject(demo)
    # A: restricted before apply; B: erased by apply, then restored from a backup.
    by_logs = sorted(subjects.items(), key=lambda item: -logs.get(str(item[1]), 0))
    (record_a, a), (_, b) = by_logs[0], by_logs[1]
    a, b = str(a), str(b)
    assert logs.get(a, 0) > 0
    restrict(a)
    a_rows = demo.app_rows("users", f"id = {int(a)}")

    # apply-deletions
    ok(demo.run("review-batch", str(batch_id), "--accept", "--reviewer", OFFICER, "--execute"))
    result = demo.run("apply-deletions", "--bucket", BUCKET, "--execute")
    assert result.exit_code == 1, result.output
    assert f"record {record_a}: on restriction of processing (hold " in result.output
    assert demo.app_rows("users", f"id = {int(a)}") == a_rows
    assert logs_by_subject(demo).get(a) == logs[a]
    with demo.session() as s:
        record = s.get(DeletionRecord, record_a)
        assert record is not None and record.deletion_applied_at is None

    # DSAR erasure
    ok(
        demo.run(
            "submit-dsar", "--kind", "erasure", "--subject-id", a,
            "--requested-by", "support@example.com", "--execute",
        )
    )  # fmt: skip
    erasure = select(DsarRequest).where(DsarRequest.kind == "erasure")
    with demo.session() as s:
        reference = s.scalars(erasure).one().reference
    ok(demo.run("review-dsar", reference, "--approve", "--reviewer", OFFICER, "--execute"))
    ok(demo.run("process-dsar-requests", "--execute"))
    with demo.session() as s:
        request = s.scalars(erasure).one()
        assert (request.last_error or "").startswith("on restriction of processing (hold ")
        assert request.deletion_record_id is None

    # replay-erasures, after a restore brought B back: an erased subject is not restricted
    # (refused at intake), so B is erased again, and A stays as it was.
    restore(demo, saved)
    refused = demo.run(
        "submit-dsar", "--kind", "restriction", "--subject-id", b,
        "--requested-by", "support@example.com", "--execute",
    )  # fmt: skip
    assert refused.exit_code == 2
    assert f"subject {b} was already erased (bucket {BUCKET})" in refused.stderr
    today = datetime.now(UTC).date().isoformat()
    out = json.loads(
        ok_stdout(demo.run("--json", "replay-erasures", "--since", today, "--execute"))
    )
    assert out["held"] == 0 and out["replayed"] >= 1
    assert demo.app_rows("users", f"id = {int(a)}") == a_rows

    # retention-cleanup, by subject_column (activity_logs) and through via (workflow_logs)
    demo.write_policy(ALL_OLD)
    activity = {s: len(demo.app_rows("activity_logs", f"user_id = {int(s)}")) for s in (a, b)}
    kept_logs = {s: logs_by_subject(demo).get(s, 0) for s in (a, b)}
    ok(demo.run("retention-cleanup", "--execute"))
    assert {s: len(demo.app_rows("activity_logs", f"user_id = {int(s)}")) for s in (a, b)} == (
        activity
    )
    assert {s: logs_by_subject(demo).get(s, 0) for s in (a, b)} == kept_logs
    assert set(logs_by_subject(demo)) <= {a, b}
    assert {str(r["user_id"]) for r in demo.app_rows("activity_logs")} <= {a, b}
