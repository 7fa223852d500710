"""apply-deletions counts every due record once, by what became of it, and exits 1 on refusals.

The case a user found: a bucket that also reaches a manual system (inactive_accounts, the
newsletter step) refused records for a legal hold and a widened policy, and exited 0.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from compliance.store.models import ComplianceProfile, DeletionBatch, DeletionRecord
from tests.conftest import DEMO_POLICY, Deployment, ok

OFFICER = "dpo@example.com"
MANUAL = "inactive_accounts"  # reaches the manual newsletter step: its records wait on it
PLAIN = "closed_accounts"
WIDE = 'tables = ["users", "workflows", "api_tokens", "activity_logs", "billing_customers"]'
NARROW = DEMO_POLICY.replace(WIDE, 'tables = ["api_tokens"]')
assert NARROW != DEMO_POLICY
OUTCOMES = ("applied", "waiting", "held", "widened", "blocked", "awaiting_export", "failed")


def records_of(d: Deployment, bucket: str) -> dict[int, str]:
    with d.session() as s:
        return dict(
            s.execute(
                select(DeletionRecord.id, ComplianceProfile.subject_id)
                .join(ComplianceProfile)
                .where(DeletionRecord.bucket == bucket)
                .order_by(DeletionRecord.id)
            ).all()
        )


def batches_of(d: Deployment, bucket: str) -> list[int]:
    ok(d.run("create-deletion-records", "--bucket", bucket, "--execute"))
    ok(d.run("create-deletion-batches", "--bucket", bucket, "--max-batch-size", "10", "--execute"))
    with d.session() as s:
        return list(
            s.scalars(
                select(DeletionBatch.id)
                .where(DeletionBatch.bucket == bucket)
                .order_by(DeletionBatch.id)
            )
        )


def accept(d: Deployment, batch_id: int) -> None:
    ok(d.run("review-batch", str(batch_id), "--accept", "--reviewer", OFFICER, "--execute"))


def apply(d: Deployment, *args: str) -> tuple[int, dict[str, Any]]:
    result = d.run("--json", "apply-deletions", "--chunk-size", "7", *args)
    return result.exit_code, json.loads(result.stdout)


def outcomes(summary: dict[str, Any]) -> dict[str, int]:
    return {k: summary[k] for k in ("due", *OUTCOMES)}


def test_refusals_in_a_bucket_with_a_manual_step_fail_every_run_that_finds_them(
    demo: Deployment,
) -> None:
    demo.write_policy(NARROW)
    widened_batch, *manual_batches = batches_of(demo, MANUAL)
    accept(demo, widened_batch)  # accepted when the bucket erased api tokens only
    demo.write_policy(DEMO_POLICY)  # then widened
    for batch_id in manual_batches:
        accept(demo, batch_id)
    for batch_id in batches_of(demo, PLAIN):
        accept(demo, batch_id)
    manual, plain = records_of(demo, MANUAL), records_of(demo, PLAIN)
    both = set(manual.values()) & set(plain.values())  # a subject due in both is erased twice
    with demo.session() as s:
        in_widened = set(
            s.scalars(
                select(DeletionRecord.id).where(DeletionRecord.deletion_batch_id == widened_batch)
            )
        )
    # Held: one subject of each bucket, due only there, in a batch accepted as it stands.
    held_manual = max(r for r, s in manual.items() if s not in both and r not in in_widened)
    held_plain = max(r for r, s in plain.items() if s not in both)
    for subject in (manual[held_manual], plain[held_plain]):
        ok(
            demo.run(
                "hold", "add", "--subject-id", subject, "--reason", "case 4", "--by", OFFICER,
                "--execute",
            )
        )  # fmt: skip
    held_user = demo.app_rows("users", f"id = {int(manual[held_manual])}")

    expected = {
        "due": len(manual) + len(plain),
        "applied": len(plain) - 1,
        "waiting": len(manual) - len(in_widened) - 1,  # on the newsletter step
        "held": 2,
        "widened": len(in_widened),
        "blocked": 0,
        "awaiting_export": 0,
        "failed": 0,
    }
    dry_code, dry = apply(demo)  # every bucket, chunks of 7: refusals across boundaries
    code, done = apply(demo, "--execute")
    assert (dry_code, code) == (1, 1), done
    assert outcomes(dry) == outcomes(done) == expected
    assert dry["rows"] == done["rows"] and dry["tasks"] == done["tasks"]
    assert demo.app_rows("users", f"id = {int(manual[held_manual])}") == held_user
    with demo.session() as s:
        errors = dict(
            s.execute(
                select(DeletionRecord.id, DeletionRecord.deletion_error).where(
                    DeletionRecord.deletion_error.is_not(None)
                )
            ).all()
        )
    assert set(errors) == in_widened | {held_manual, held_plain}

    # Refused in an earlier run and still due: refused again, and the run fails again.
    expected |= {"due": expected["due"] - expected["applied"], "applied": 0}
    for args in ((), ("--bucket", MANUAL)):
        dry_code, dry = apply(demo, *args)
        code, done = apply(demo, *args, "--execute")
        assert (dry_code, code) == (1, 1), done
        assert outcomes(dry) == outcomes(done)
    assert outcomes(done) == expected | {"due": len(manual), "held": 1}
    assert outcomes(apply(demo, "--bucket", PLAIN)[1])["held"] == 1


def test_the_summary_names_each_outcome_with_its_count(demo: Deployment) -> None:
    for batch_id in batches_of(demo, MANUAL):
        accept(demo, batch_id)
    due = len(records_of(demo, MANUAL))
    result = demo.run("apply-deletions", "--execute")
    assert result.exit_code == 0, result.output
    assert f"Erased 0 of {due} due records\n" in result.output
    assert f"  {due} waiting on a manual or webhook system" in result.output
    for line in (
        "  0 refused: on legal hold",
        "  0 refused: the policy widened or changed after their batch was accepted",
        "  0 blocked by a foreign key from kept data (0 new;",
        "  0 failed",
    ):
        assert line in result.output
