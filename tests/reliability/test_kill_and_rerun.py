"""Every mutating job, SIGKILLed at a seeded commit, loses nothing: the rerun finishes the work.

Each scenario builds its starting state through the library, kills the job with
``COMPLIANCE_FAILPOINT=commit.before|after:N`` (N from ``random.Random(seed)``), reruns it,
then checks the suite's invariants and that the work is done.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from compliance.audit.subject_keys import hashed_key, key_secret
from compliance.deletion.apply import apply_deletions
from compliance.deletion.batches import create_deletion_batches
from compliance.deletion.records import create_deletion_records
from compliance.dsar.decisions import review_dsar
from compliance.dsar.processing import CLAIM_LEASE, process_dsar_requests
from compliance.dsar.requests import submit
from compliance.policy.strategies import HashStrategy
from compliance.storage import ABANDONED_WRITE_AGE
from compliance.store.models import (
    AuditEvent,
    ComplianceProfile,
    DeletionBatch,
    DeletionRecord,
    DsarRequest,
    utcnow,
)
from tests.conftest import DPO, SUPPORT_STAFF, Deployment, fill_demo
from tests.reliability.conftest import (
    LONG,
    POLICY,
    USERS,
    Snapshot,
    check_invariants,
    datamap,
    is_temp,
    kill_point,
    policy,
    rerun,
    reviewed_world,
    run_killed,
    seeds,
    snapshot,
)


@dataclass(frozen=True)
class Scenario:
    """A job in a given starting state, how many commits it makes, and what 'done' means."""

    job: str
    prepare: Callable[[Deployment, int], list[str]]  # builds the world, returns the argv
    commits: int  # the job's commits (job run start and finish included), for the kill point
    done: Callable[[Deployment, Snapshot, int], None]
    rerun_exits: tuple[int, ...] = (0,)


def _demo(d: Deployment, seed: int) -> None:
    d.write_policy(POLICY.replace("[buckets.everyone]", "[buckets.everyone]\npurge_after_days = 0"))
    fill_demo(d, users_count=USERS, seed=seed)


def _records(d: Deployment, seed: int) -> None:
    _demo(d, seed)
    with d.session() as s:
        create_deletion_records(s, datamap(d), "everyone", actor="t", execute=True)


def _count(d: Deployment, query) -> int:  # type: ignore[no-untyped-def]
    with d.session() as s:
        return s.scalar(query) or 0


# ------------------------------------------------------------ create-deletion-records


def prepare_records(d: Deployment, seed: int) -> list[str]:
    _demo(d, seed)
    return ["create-deletion-records", "--bucket", "everyone", "--execute"]


def records_done(d: Deployment, before: Snapshot, seed: int) -> None:
    assert _count(d, select(func.count()).select_from(DeletionRecord)) == USERS, f"seed {seed}"


# ------------------------------------------------------------ create-deletion-batches


def prepare_batches(d: Deployment, seed: int) -> list[str]:
    _records(d, seed)
    size = random.Random(seed).choice([7, 13, 20])
    return ["create-deletion-batches", "--bucket", "everyone", "--max-batch-size", str(size),
            "--execute"]  # fmt: skip


def batches_done(d: Deployment, before: Snapshot, seed: int) -> None:
    unbatched = select(func.count()).where(DeletionRecord.deletion_batch_id.is_(None))
    assert _count(d, unbatched) == 0, f"seed {seed}: records left out of every batch"
    audited = _count(d, select(func.count()).where(AuditEvent.action == "deletion_batch.created"))
    assert audited == _count(d, select(func.count()).select_from(DeletionBatch)), f"seed {seed}"


# ------------------------------------------------------------ review-batch


def prepare_review(d: Deployment, seed: int) -> list[str]:
    _records(d, seed)
    with d.session() as s:
        create_deletion_batches(s, policy(d), "everyone", actor="t", execute=True)
    exclude = _count(d, select(func.max(DeletionRecord.id)))
    return ["review-batch", "1", "--accept", "--reviewer", "dpo@example.com",
            "--exclude", f"{exclude}:legal hold", "--execute"]  # fmt: skip


def review_done(d: Deployment, before: Snapshot, seed: int) -> None:
    with d.session() as s:
        batch = s.get(DeletionBatch, 1)
        assert batch is not None and batch.reviewed_status == "accepted", f"seed {seed}"
        decisions = s.execute(
            select(DeletionRecord.accepted_for_deletion, func.count()).group_by(
                DeletionRecord.accepted_for_deletion
            )
        ).all()
        assert sorted(decisions) == [(False, 1), (True, USERS - 1)], f"seed {seed}: {decisions}"
        reviews = s.scalar(
            select(func.count()).where(AuditEvent.action == "deletion_batch.accepted")
        )
        assert reviews == 1, f"seed {seed}: the batch was accepted {reviews} times"


# ------------------------------------------------------------ apply-deletions


def prepare_apply(d: Deployment, seed: int) -> list[str]:
    reviewed_world(d, seed)
    chunk = random.Random(seed).choice([5, 9, 16])
    return ["apply-deletions", "--execute", "--chunk-size", str(chunk)]


def apply_done(d: Deployment, before: Snapshot, seed: int) -> None:
    with d.session() as s:
        waiting = s.scalar(
            select(func.count()).where(
                DeletionRecord.accepted_for_deletion.is_(True),
                DeletionRecord.deletion_applied_at.is_(None),
            )
        )
    assert waiting == 0, f"seed {seed}: {waiting} accepted records never applied"
    hashed = HashStrategy().transform
    erased = [u for u in d.app_rows("users") if str(u["id"]) not in before.protected]
    for user in erased:
        assert user["email"] == hashed(before.emails[user["id"]]), f"seed {seed}"
        assert user["full_name"] is None, f"seed {seed}"
    ids = ", ".join(str(u["id"]) for u in erased)
    assert d.app_rows("workflows", f"user_id IN ({ids})") == [], f"seed {seed}"
    assert d.app_rows("activity_logs", f"user_id IN ({ids})") == [], f"seed {seed}"


# ------------------------------------------------------------ purge-compliance-data


def prepare_purge(d: Deployment, seed: int) -> list[str]:
    reviewed_world(d, seed)
    d.write_policy(POLICY.replace("[buckets.everyone]", "[buckets.everyone]\npurge_after_days = 0"))
    with d.session() as s:
        apply_deletions(s, datamap(d), actor="t", execute=True)
    return ["purge-compliance-data", "--bucket", "everyone", "--execute"]


def purge_done(d: Deployment, before: Snapshot, seed: int) -> None:
    assert _count(d, select(func.count()).select_from(DeletionRecord)) == 0, f"seed {seed}"
    assert _count(d, select(func.count()).select_from(DeletionBatch)) == 0, f"seed {seed}"
    with d.session() as s:
        purged = sum(
            e.details.get("records", 0)
            for e in s.scalars(
                select(AuditEvent).where(AuditEvent.action == "compliance_data.purged")
            )
        )
    assert purged == USERS, f"seed {seed}: {purged} of {USERS} removals have evidence"


# ------------------------------------------------------------ DSAR jobs


ACCESS, ERASURE = ["3", "5", "8", "13", "21"], ["34", "55"]


def _approved_requests(d: Deployment, *, access: bool = True) -> None:
    with d.session() as s:
        for kind, subjects in (("access", ACCESS if access else []), ("erasure", ERASURE)):
            for subject in subjects:
                request = submit(
                    s, policy(d), d.app_engine, kind=kind, subject_id=subject,
                    requested_by=SUPPORT_STAFF, execute=True,
                ).request  # fmt: skip
                review_dsar(
                    s,
                    request.reference,
                    "approve",
                    reviewer=DPO,
                    four_eyes=True,
                    policy=policy(d),
                    execute=True,
                )


def prepare_process(d: Deployment, seed: int) -> list[str]:
    _demo(d, seed)
    _approved_requests(d)
    return ["process-dsar-requests", "--execute", "--limit", str(random.Random(seed).randint(1, 3))]


def process_done(d: Deployment, before: Snapshot, seed: int) -> None:
    with d.session() as s:
        requests = s.scalars(select(DsarRequest).order_by(DsarRequest.id)).all()
        states = {(r.subject_id, r.status, r.deletion_record_id is not None) for r in requests}
    assert states == {(a, "ready", False) for a in ACCESS} | {
        (e, "processing", True) for e in ERASURE
    }, f"seed {seed}: a request was lost: {states}"
    exported = sorted(p.name for p in (d.dir / "exports").glob("DSAR-*.zip"))
    assert len(exported) == len(ACCESS), f"seed {seed}: {exported}"


def prepare_completion(d: Deployment, seed: int) -> list[str]:
    """Erasures applied: the run completes them, forgets the subjects and hashes their keys."""
    _demo(d, seed)
    _approved_requests(d, access=False)
    with d.session() as s:
        process_dsar_requests(s, datamap(d), actor="t", execute=True)
    with d.session() as s:
        apply_deletions(s, datamap(d), actor="t", execute=True)
    return ["process-dsar-requests", "--execute"]


def completion_done(d: Deployment, before: Snapshot, seed: int) -> None:
    secret = key_secret(policy(d))
    assert secret is not None
    with d.session() as s:
        erasures = s.scalars(select(DsarRequest).where(DsarRequest.kind == "erasure")).all()
        profiles = set(s.scalars(select(ComplianceProfile.subject_id)))
        hashed = s.scalars(
            select(AuditEvent.details).where(AuditEvent.action == "subject_keys.hashed")
        ).all()
        forgotten = s.scalar(
            select(func.count()).where(AuditEvent.action == "dsar.subject_forgotten")
        )
    assert {(r.subject_id, r.status) for r in erasures} == {
        (hashed_key(e, secret), "completed") for e in ERASURE
    }, f"seed {seed}: {[(r.subject_id, r.status) for r in erasures]}"
    assert not profiles & set(ERASURE), f"seed {seed}: a key kept as typed"
    assert sum(h["subjects"] for h in hashed) == len(ERASURE), f"seed {seed}: {hashed}"
    assert forgotten == len(ERASURE), f"seed {seed}: forgotten {forgotten} times"


def prepare_cleanup(d: Deployment, seed: int) -> list[str]:
    _demo(d, seed)
    _approved_requests(d)
    with d.session() as s:
        process_dsar_requests(s, datamap(d), actor="t", execute=True)
        # Forty days pass for all but two exports: the cleanup must leave those two.
        s.execute(
            update(DsarRequest)
            .where(DsarRequest.subject_id.not_in(ACCESS[:2]))
            .values(exported_at=utcnow() - timedelta(days=40))
        )
        s.commit()
    return ["cleanup-expired-exports", "--execute"]


def cleanup_done(d: Deployment, before: Snapshot, seed: int) -> None:
    with d.session() as s:
        kept = s.scalars(
            select(DsarRequest.subject_id).where(DsarRequest.export_path.is_not(None))
        ).all()
    assert sorted(kept) == sorted(ACCESS[:2]), f"seed {seed}: {kept}"
    assert len(list((d.dir / "exports").glob("DSAR-*.zip"))) == 2, f"seed {seed}"


def prepare_submit(d: Deployment, seed: int) -> list[str]:
    _demo(d, seed)
    return ["submit-dsar", "--kind", "access", "--subject-id", "7",
            "--requested-by", "support@example.com", "--execute"]  # fmt: skip


def submit_done(d: Deployment, before: Snapshot, seed: int) -> None:
    with d.session() as s:
        references = s.scalars(select(DsarRequest.reference)).all()
        submitted = s.scalar(select(func.count()).where(AuditEvent.action == "dsar.submitted"))
    assert len(references) == 1, f"seed {seed}: {references}"
    assert re.fullmatch(r"DSAR-\d{4}-\d{6}", references[0]), f"seed {seed}: {references}"
    assert submitted == 1, f"seed {seed}"


# ------------------------------------------------------------ retention-cleanup


def prepare_retention(d: Deployment, seed: int) -> list[str]:
    _demo(d, seed)
    return ["retention-cleanup", "--execute"]


def retention_done(d: Deployment, before: Snapshot, seed: int) -> None:
    cutoff = utcnow() - timedelta(days=90)
    with d.app_engine.connect() as conn:
        from sqlalchemy import text

        rows = conn.execute(text("SELECT created_at FROM workflow_logs")).scalars().all()
    assert rows, f"seed {seed}: recent logs must stay"
    old = [r for r in rows if str(r) < cutoff.strftime("%Y-%m-%d %H:%M:%S")]
    assert old == [], f"seed {seed}: {len(old)} logs past retention remain"


SCENARIOS = {
    "create-deletion-records": Scenario("create-deletion-records", prepare_records, 3,
                                        records_done),
    "create-deletion-batches": Scenario("create-deletion-batches", prepare_batches, 3,
                                        batches_done),
    "review-batch": Scenario("review-batch", prepare_review, 3, review_done, (0, 2)),
    "apply-deletions": Scenario("apply-deletions", prepare_apply, 9, apply_done),
    "purge-compliance-data": Scenario("purge-compliance-data", prepare_purge, 4, purge_done),
    "process-dsar-requests": Scenario("process-dsar-requests", prepare_process, 12, process_done),
    "cleanup-expired-exports": Scenario("cleanup-expired-exports", prepare_cleanup, 3,
                                        cleanup_done),
    "submit-dsar": Scenario("submit-dsar", prepare_submit, 4, submit_done),
    "retention-cleanup": Scenario("retention-cleanup", prepare_retention, 3, retention_done),
}  # fmt: skip


def lease_runs_out(d: Deployment) -> None:
    """Time passes: a request claimed by the killed worker becomes claimable again."""
    with d.session() as s:
        for request in s.scalars(select(DsarRequest).where(DsarRequest.status == "processing")):
            request.processing_started_at = utcnow() - CLAIM_LEASE
        s.commit()


@pytest.mark.parametrize("seed", seeds())
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_a_job_killed_at_a_random_commit_finishes_on_rerun(
    deployment: Deployment, name: str, seed: int
) -> None:
    scenario = SCENARIOS[name]
    args = scenario.prepare(deployment, seed)
    before = snapshot(deployment)
    point = kill_point(seed, scenario.commits)
    run_killed(deployment, args, point, seed)
    check_invariants(deployment, before, seed, killed=True)
    lease_runs_out(deployment)

    rerun(deployment, args, seed, expect=scenario.rerun_exits)
    scenario.done(deployment, before, seed)
    check_invariants(deployment, before, seed)


def test_an_export_killed_mid_write_is_never_visible_and_its_temp_file_is_cleaned_up(
    deployment: Deployment,
) -> None:
    seed = seeds()[0]
    args = prepare_process(deployment, seed)
    before = snapshot(deployment)
    point = f"exports.before_rename:{random.Random(seed).randint(1, len(ACCESS))}"
    run_killed(deployment, args, point, seed)
    exports = deployment.dir / "exports"
    temp = [p for p in exports.iterdir() if is_temp(p)]
    assert len(temp) == 1, f"seed {seed}: {sorted(p.name for p in exports.iterdir())}"
    check_invariants(deployment, before, seed, killed=True)

    lease_runs_out(deployment)
    rerun(deployment, args, seed)
    process_done(deployment, before, seed)
    check_invariants(deployment, before, seed)
    fresh = rerun(deployment, ["cleanup-expired-exports", "--execute"], seed)
    assert temp[0].exists(), "a write that may still be running is left alone"
    assert "half-written" not in fresh
    hours_ago = time.time() - ABANDONED_WRITE_AGE.total_seconds() - 60
    os.utime(temp[0], (hours_ago, hours_ago))  # the write was abandoned hours ago
    out = rerun(deployment, ["cleanup-expired-exports", "--execute"], seed)
    assert "1 half-written exports of killed runs" in out
    assert not temp[0].exists()
    assert len(list(exports.glob("DSAR-*.zip"))) == len(ACCESS), "finished exports stay"
    check_invariants(deployment, before, seed)


@pytest.mark.skipif(not LONG, reason="random-time kills run with RELIABILITY_LONG=1")
@pytest.mark.parametrize("seed", seeds())
@pytest.mark.parametrize(
    "name", ["apply-deletions", "process-dsar-requests", "purge-compliance-data"]
)
def test_a_job_killed_at_a_random_moment_finishes_on_rerun(
    deployment: Deployment, name: str, seed: int
) -> None:
    scenario = SCENARIOS[name]
    args = scenario.prepare(deployment, seed)
    before = snapshot(deployment)
    job = deployment.run_process(*args)
    # Not an assertion on time: the seed only picks where in the run the kill lands.
    time.sleep(random.Random(seed).uniform(0.3, 1.5))
    job.kill()
    job.communicate(timeout=60)
    check_invariants(deployment, before, seed, killed=True)

    lease_runs_out(deployment)
    rerun(deployment, args, seed, expect=scenario.rerun_exits)
    scenario.done(deployment, before, seed)
    check_invariants(deployment, before, seed)


@pytest.mark.parametrize("point", ["commit.before:2", "commit.after:2", "commit.after:6"])
def test_records_killed_between_small_commits_are_each_opened_once(
    deployment: Deployment, point: str
) -> None:
    """Many commits of 7 subjects: on PostgreSQL the keys are staged first (commit 2)."""
    seed = seeds()[0]
    args = ["create-deletion-records", "--bucket", "everyone", "--chunk-size", "7", "--execute"]
    _demo(deployment, seed)
    before = snapshot(deployment)
    run_killed(deployment, args, point, seed)
    check_invariants(deployment, before, seed, killed=True)

    rerun(deployment, args, seed)

    records_done(deployment, before, seed)
    with deployment.session() as s:
        audited = sum(
            e.details["created"]
            for e in s.scalars(
                select(AuditEvent).where(AuditEvent.action == "deletion_records.created")
            )
        )
    assert audited == USERS, f"seed {seed}: {audited} records audited as created"
    check_invariants(deployment, before, seed)


@pytest.mark.parametrize("point", ["commit.before:3", "commit.after:3"])
def test_completing_erasures_killed_around_the_key_hashing_hashes_each_key_once(
    deployment: Deployment, point: str
) -> None:
    """The run's third commit hashes the erased subjects' keys (its second completed them):
    killed on either side of it, the rerun leaves each key hashed, once."""
    seed = seeds()[0]
    args = prepare_completion(deployment, seed)
    before = snapshot(deployment)
    run_killed(deployment, args, point, seed)
    check_invariants(deployment, before, seed, killed=True)
    rerun(deployment, args, seed)
    completion_done(deployment, before, seed)
    check_invariants(deployment, before, seed)
