"""Two workers at once never do the same work twice.

``apply-deletions`` takes the job's lock, so a second process started alongside changes
nothing; the library's ``FOR UPDATE SKIP LOCKED`` claim makes even lock-free callers safe,
and it is what lets one run erase with several workers (``--workers 2``).
``process-dsar-requests`` runs without a lock: its workers claim what the others have not.
"""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from compliance.deletion.apply import ApplyResult, apply_deletions
from compliance.dsar.decisions import review_dsar
from compliance.dsar.processing import CLAIM_LEASE, claim_requests
from compliance.dsar.requests import submit
from compliance.store.models import AuditEvent, DeletionRecord, DsarRequest, utcnow
from tests.conftest import DPO, SUPPORT_STAFF, Deployment
from tests.reliability.conftest import (
    SEEDS,
    USERS,
    check_invariants,
    datamap,
    policy,
    rerun,
    reviewed_world,
    run_killed,
    snapshot,
)
from tests.reliability.test_kill_and_rerun import apply_done

SEED = SEEDS[0]


def postgresql_only(d: Deployment) -> None:
    if d.backend != "postgresql":
        pytest.skip("row locks with SKIP LOCKED and concurrent writers are PostgreSQL's")


def accepted_count(d: Deployment) -> int:
    with d.session() as s:
        return s.scalar(select(func.count()).where(DeletionRecord.accepted_for_deletion.is_(True)))


def test_two_apply_deletions_started_together_apply_each_record_once(
    deployment: Deployment,
) -> None:
    postgresql_only(deployment)
    reviewed_world(deployment, SEED)
    before = snapshot(deployment)
    args = ["--json", "apply-deletions", "--execute", "--chunk-size", "3"]
    workers = [deployment.run_process(*args) for _ in range(2)]
    outputs = [w.communicate(timeout=300) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    summaries = [json.loads(out) for out, _ in outputs]
    applied = sum(s.get("applied", 0) for s in summaries)
    assert applied == accepted_count(deployment) == USERS - 21
    check_invariants(deployment, before, SEED)


def test_lock_free_workers_share_the_records_without_applying_one_twice(
    deployment: Deployment,
) -> None:
    postgresql_only(deployment)
    reviewed_world(deployment, SEED)
    before = snapshot(deployment)
    results: list[ApplyResult] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def worker() -> None:
        try:
            with deployment.session() as session:
                start.wait(timeout=30)
                results.append(
                    apply_deletions(
                        session, datamap(deployment), actor="w", execute=True, chunk_size=2
                    )
                )
        except BaseException as exc:  # reported below, with the thread's error
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert errors == []
    assert sum(r.applied for r in results) == accepted_count(deployment) == USERS - 21
    assert all(r.failed == 0 for r in results)
    check_invariants(deployment, before, SEED)


def approved_access_requests(d: Deployment, count: int) -> list[str]:
    references = []
    with d.session() as s:
        for subject in range(1, count + 1):
            request = submit(
                s, policy(d), d.app_engine, kind="access", subject_id=str(subject),
                requested_by=SUPPORT_STAFF, execute=True,
            ).request  # fmt: skip
            review_dsar(s, request.reference, "approve", reviewer=DPO, four_eyes=True, execute=True)
            references.append(request.reference)
    return references


def test_two_dsar_workers_export_each_request_once(deployment: Deployment) -> None:
    postgresql_only(deployment)
    reviewed_world(deployment, SEED)
    before = snapshot(deployment)
    references = approved_access_requests(deployment, 12)
    args = ["process-dsar-requests", "--execute", "--limit", "1"]
    workers = [deployment.run_process(*args) for _ in range(2)]
    outputs = [w.communicate(timeout=300) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    with deployment.session() as s:
        built = s.scalars(
            select(AuditEvent.target_id).where(AuditEvent.action == "dsar.export_ready")
        ).all()
        statuses = set(s.scalars(select(DsarRequest.status)))
    assert sorted(built) == sorted(references), "each request exported exactly once"
    assert statuses == {"ready"}  # the test policy mails nobody: support sends the links
    check_invariants(deployment, before, SEED)


def test_a_live_claim_is_not_taken_over_until_its_lease_runs_out(deployment: Deployment) -> None:
    reviewed_world(deployment, SEED)
    approved_access_requests(deployment, 1)
    now = utcnow()
    with deployment.session() as s:
        first = claim_requests(s, now=now)
        assert len(first) == 1
        assert claim_requests(s, now=now + timedelta(minutes=1)) == []
        assert claim_requests(s, now=now + CLAIM_LEASE + timedelta(seconds=1)) == first


def test_one_run_with_two_workers_applies_each_record_once(deployment: Deployment) -> None:
    postgresql_only(deployment)
    reviewed_world(deployment, SEED)
    before = snapshot(deployment)

    out = rerun(
        deployment,
        ["--json", "apply-deletions", "--execute", "--chunk-size", "3", "--workers", "2"],
        SEED,
    )

    summary = json.loads(out)
    assert summary["applied"] == accepted_count(deployment) == USERS - 21
    assert summary["failed"] == 0
    apply_done(deployment, before, SEED)
    check_invariants(deployment, before, SEED)


@pytest.mark.parametrize("point", ["commit.before:5", "commit.after:8"])
def test_two_workers_killed_at_a_commit_finish_exactly_once_on_rerun(
    deployment: Deployment, point: str
) -> None:
    postgresql_only(deployment)
    reviewed_world(deployment, SEED)
    before = snapshot(deployment)
    args = ["apply-deletions", "--execute", "--chunk-size", "3", "--workers", "2"]
    run_killed(deployment, args, point, SEED)
    check_invariants(deployment, before, SEED, killed=True)

    rerun(deployment, args, SEED)

    apply_done(deployment, before, SEED)
    check_invariants(deployment, before, SEED)


def test_two_workers_on_sqlite_are_refused_with_a_clear_error(deployment: Deployment) -> None:
    if deployment.backend != "sqlite":
        pytest.skip("the refusal is SQLite's")
    reviewed_world(deployment, SEED)

    result = deployment.run("apply-deletions", "--execute", "--workers", "2")

    assert result.exit_code == 2
    assert "parallel workers need PostgreSQL" in result.output
    assert accepted_count(deployment) > 0
    with deployment.session() as s:
        applied = s.scalar(
            select(func.count()).where(DeletionRecord.deletion_applied_at.is_not(None))
        )
    assert applied == 0
