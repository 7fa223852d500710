"""An accepted batch erases what was accepted: a policy widened afterwards is refused."""

from __future__ import annotations

import json

from compliance.deletion.plans import widening
from compliance.reports.review_queue import accepted_plan
from compliance.store.models import DeletionRecord
from tests.conftest import DEMO_POLICY, Deployment, ok, ok_stdout

BUCKET = "closed_accounts"
OFFICER = "dpo@example.com"
FULL = (
    'tables = ["users", "workflows", "api_tokens", "activity_logs", "support_tickets", '
    '"billing_customers"]'
)
TICKETS_ONLY = DEMO_POLICY.replace(FULL, 'tables = ["support_tickets"]')
assert TICKETS_ONLY != DEMO_POLICY


def accepted_batch(d: Deployment) -> int:
    ok(d.run("create-deletion-records", "--bucket", BUCKET, "--execute"))
    out = ok_stdout(d.run("--json", "create-deletion-batches", "--bucket", BUCKET, "--execute"))
    batch_id = json.loads(out)["batch_ids"][0]
    ok(d.run("review-batch", str(batch_id), "--accept", "--reviewer", OFFICER, "--execute"))
    return batch_id


def test_a_policy_widened_after_acceptance_erases_nothing_of_that_batch(
    demo: Deployment,
) -> None:
    demo.write_policy(TICKETS_ONLY)
    batch_id = accepted_batch(demo)
    with demo.session() as s:
        digest, plan = accepted_plan(s, batch_id)
    assert digest is not None
    assert plan.to_dict("records") == [
        {"table": "support_tickets", "action": "delete", "columns": ""}
    ]
    demo.write_policy(DEMO_POLICY)  # someone widens the bucket after the officer accepted
    tables = ["users", "workflows", "workflow_runs", "api_tokens", "activity_logs"]
    before = demo.checksum(*tables, "support_tickets")
    untouched = demo.checksum(*tables)

    result = demo.run("apply-deletions", "--bucket", BUCKET, "--execute")

    assert result.exit_code == 1
    assert (
        "policy changed after acceptance: activity_logs (delete) not in the accepted plan; "
        "api_tokens (delete) not in the accepted plan; billing_customers (anonymize) not in the "
        "accepted plan; billing_notes (delete) not in the accepted plan; users (anonymize) not "
        "in the accepted plan"
    ) in result.output
    assert demo.checksum(*tables, "support_tickets") == before
    with demo.session() as s:
        records = s.query(DeletionRecord).filter_by(deletion_batch_id=batch_id).all()
    assert records and all(r.deletion_applied_at is None for r in records)
    assert all(r.deletion_error.endswith("; re-review") for r in records)

    # Back to what was accepted: the same records apply, support tickets only.
    demo.write_policy(TICKETS_ONLY)
    ok(demo.run("apply-deletions", "--bucket", BUCKET, "--execute"))
    assert demo.checksum(*tables) == untouched
    assert demo.checksum(*tables, "support_tickets") != before


def test_a_narrower_plan_applies_as_it_stands(demo: Deployment) -> None:
    batch_id = accepted_batch(demo)
    demo.write_policy(TICKETS_ONLY)
    users = demo.checksum("users", "workflows", "activity_logs")
    with demo.session() as s:
        subjects = [
            int(r.profile.subject_id)
            for r in s.query(DeletionRecord).filter_by(deletion_batch_id=batch_id)
        ]
    listed = ", ".join(str(k) for k in subjects)

    ok(demo.run("apply-deletions", "--bucket", BUCKET, "--execute"))

    assert demo.checksum("users", "workflows", "activity_logs") == users
    assert demo.app_rows("support_tickets", f"user_id IN ({listed})") == []


def test_what_counts_as_wider() -> None:
    accepted = [
        {"table": "users", "action": "anonymize", "columns": ["email", "phone"]},
        {"table": "tickets", "action": "delete", "columns": []},
    ]
    assert widening(accepted, accepted) == []
    assert widening(accepted, [accepted[0]]) == []  # a table left out
    assert (
        widening(accepted, [{"table": "tickets", "action": "anonymize", "columns": ["body"]}]) == []
    )  # anonymizing rows accepted for deletion
    assert widening(
        accepted, [{"table": "users", "action": "anonymize", "columns": ["email", "country"]}]
    ) == ["users.country not in the accepted plan"]
    assert widening(accepted, [{"table": "users", "action": "delete", "columns": []}]) == [
        "users is deleted, but the accepted plan only anonymizes it"
    ]
