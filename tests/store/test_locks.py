"""Safe scheduling: a cron run that overlaps another of the same job changes nothing, exits 0."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import select

from compliance.ops.locks import job_lock
from compliance.store.models import AuditEvent, JobRun
from tests.conftest import ROOT, Deployment

HOLDER = """
import sys
from compliance.store.engines import make_engine
from compliance.ops.locks import job_lock

engine = make_engine(sys.argv[1])
with job_lock(engine, sys.argv[2]) as held:
    print("held" if held else "busy", flush=True)
    sys.stdin.readline()  # hold until the test closes our stdin
"""


@contextmanager
def lock_held_by_another_process(d: Deployment, job: str) -> Iterator[subprocess.Popen[str]]:
    """A second process takes the job's lock, as a long run started by cron earlier would."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, d.database_url, job],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        if holder.poll() is None:
            holder.stdin.close()  # type: ignore[union-attr]
            holder.wait(timeout=30)
        holder.stdout.close()  # type: ignore[union-attr]


def run(d: Deployment, *args: str) -> tuple[int, str, str]:
    proc = d.run_process(*args)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def events(d: Deployment) -> int:
    with d.session() as s:
        return len(s.scalars(select(AuditEvent.id)).all())


def test_an_overlapping_run_says_already_running_changes_nothing_and_exits_0(
    demo: Deployment,
) -> None:
    logs = demo.checksum("workflow_logs")
    events_before = events(demo)

    with lock_held_by_another_process(demo, "retention-cleanup"):
        code, out, err = run(demo, "retention-cleanup", "--execute")

    assert code == 0, err
    assert "retention-cleanup is already running; this run changed nothing." in out
    assert demo.checksum("workflow_logs") == logs
    assert events(demo) == events_before
    with demo.session() as s:
        (skipped,) = s.scalars(select(JobRun).where(JobRun.job == "retention-cleanup")).all()
    assert (skipped.status, skipped.dry_run) == ("skipped", False)

    # Once the other run is over, the next one does the work.
    code, out, err = run(demo, "--json", "retention-cleanup", "--execute")
    assert code == 0, err
    assert json.loads(out)["rows"] > 0
    assert demo.checksum("workflow_logs") != logs


def test_a_killed_holder_does_not_leave_the_job_locked(demo: Deployment) -> None:
    with lock_held_by_another_process(demo, "retention-cleanup") as holder:
        holder.kill()  # as kill -9 or the OOM killer would
        holder.wait(timeout=30)

        code, out, err = run(demo, "--json", "retention-cleanup", "--execute")

    assert code == 0, err
    assert "already running" not in out
    assert json.loads(out)["executed"] is True


def test_a_dry_run_neither_waits_for_nor_is_stopped_by_the_lock(demo: Deployment) -> None:
    with lock_held_by_another_process(demo, "retention-cleanup"):
        code, out, err = run(demo, "retention-cleanup")

    assert code == 0, err
    assert "[DRY RUN] Would delete" in out
    assert "already running" not in out


def test_each_job_has_a_lock_of_its_own(demo: Deployment) -> None:
    with lock_held_by_another_process(demo, "retention-cleanup"):
        code, out, err = run(demo, "apply-deletions", "--execute")

    assert code == 0, err
    assert "already running" not in out


def test_the_lock_is_exclusive_and_released_after_use(deployment: Deployment) -> None:
    with (
        job_lock(deployment.engine, "verify") as first,
        job_lock(deployment.engine, "verify") as second,
    ):
        assert (first, second) == (True, False)
    with job_lock(deployment.engine, "verify") as again:
        assert again is True


def test_each_bucket_has_a_lock_of_its_own(demo: Deployment) -> None:
    with lock_held_by_another_process(demo, "create-deletion-records --bucket closed_accounts"):
        code, out, err = run(
            demo, "create-deletion-records", "--bucket", "closed_accounts", "--execute"
        )
        assert code == 0, err
        assert (
            "create-deletion-records --bucket closed_accounts is already running; "
            "this run changed nothing." in out
        )
        code, out, err = run(
            demo, "create-deletion-records", "--bucket", "inactive_accounts", "--execute"
        )
        assert code == 0, err
        assert "already running" not in out and out.startswith("Created ")


def runs(d: Deployment, job: str) -> list[JobRun]:
    with d.session() as s:
        return list(s.scalars(select(JobRun).where(JobRun.job == job).order_by(JobRun.id)))


def test_a_run_killed_halfway_is_closed_as_crashed_by_the_next_run(demo: Deployment) -> None:
    killed = demo.run_process(
        "retention-cleanup", "--execute", env={"COMPLIANCE_FAILPOINT": "commit.after:1"}
    )
    killed.communicate(timeout=120)
    assert killed.returncode == -signal.SIGKILL
    assert [r.status for r in runs(demo, "retention-cleanup")] == ["running"]

    code, _, err = run(demo, "retention-cleanup", "--execute")

    assert code == 0, err
    dead, rerun = runs(demo, "retention-cleanup")
    assert (dead.status, dead.finished_at) == ("crashed", None)  # when it died is unknown
    assert f"run {rerun.id} found its lock free" in (dead.error or "")
    assert rerun.status == "succeeded"


def test_a_run_that_still_holds_its_lock_is_not_closed(demo: Deployment) -> None:
    with demo.session() as s:
        s.add(JobRun(job="retention-cleanup", arguments={}, dry_run=False))
        s.commit()

    with lock_held_by_another_process(demo, "retention-cleanup"):
        code, out, err = run(demo, "retention-cleanup", "--execute")

    assert code == 0 and "already running" in out, err
    assert [r.status for r in runs(demo, "retention-cleanup")] == ["running", "skipped"]


def test_only_the_same_buckets_real_runs_are_closed(demo: Deployment) -> None:
    """Dry runs hold no lock and another bucket has its own: neither is judged by this lock."""
    job = "create-deletion-records"
    with demo.session() as s:
        s.add_all(
            [
                JobRun(job=job, arguments={"bucket": "inactive_accounts"}, dry_run=False),
                JobRun(job=job, arguments={"bucket": "closed_accounts"}, dry_run=True),
                JobRun(job=job, arguments={"bucket": "closed_accounts"}, dry_run=False),
            ]
        )
        s.commit()

    with lock_held_by_another_process(demo, f"{job} --bucket inactive_accounts"):
        code, _, err = run(demo, job, "--bucket", "closed_accounts", "--execute")

    assert code == 0, err
    assert [r.status for r in runs(demo, job)] == ["running", "running", "crashed", "succeeded"]
