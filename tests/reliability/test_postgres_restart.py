"""PostgreSQL going away in the middle of a job: the job fails cleanly, the rerun finishes.

The default run cuts only the job's own server connections (found by the
``application_name`` its policy file gives it). ``RELIABILITY_LONG=1`` really restarts the
server with pg_ctlcluster, which every other connection feels too: never in the default run.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import Deployment, policy_text
from tests.reliability.conftest import (
    LONG,
    POLICY,
    SEEDS,
    check_invariants,
    rerun,
    reviewed_world,
    snapshot,
)
from tests.reliability.test_kill_and_rerun import apply_done

SEED = SEEDS[0]


def named(url: str, name: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}application_name={name}"


def wait_until(condition: Callable[[], bool], what: str, seconds: float = 60) -> None:
    """Poll a bounded number of times; fail saying what never happened."""
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting until {what}")


def restart_server() -> None:
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        check=True,
        timeout=120,
    )


@pytest.mark.parametrize("how", ["terminate", "restart"] if LONG else ["terminate"])
def test_a_job_cut_off_from_postgresql_fails_cleanly_and_the_rerun_finishes(
    deployment: Deployment, pg_server_url: str, how: str
) -> None:
    if deployment.backend != "postgresql":
        pytest.skip("a PostgreSQL server to lose")
    reviewed_world(deployment, SEED)
    before = snapshot(deployment)
    name = f"pd-victim-{uuid.uuid4().hex[:8]}"
    deployment.policy_path.write_text(
        policy_text(POLICY, named(deployment.database_url, name), named(deployment.app_url, name))
    )
    # Autocommit: pg_stat_activity is a snapshot for the length of a transaction.
    admin = create_engine(pg_server_url, isolation_level="AUTOCOMMIT")
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name "
        "AND wait_event_type = 'Lock'"
    )
    # Hold an application table so the job waits on it: a fixed moment in the middle of the job.
    blocker = deployment.app_engine.connect()
    job = None
    try:
        blocker.execute(text("LOCK TABLE activity_logs IN ACCESS EXCLUSIVE MODE"))
        job = deployment.run_process("apply-deletions", "--execute", "--chunk-size", "4")
        with admin.connect() as conn:
            wait_until(
                lambda: conn.scalar(waiting, {"name": name}) > 0 or job.poll() is not None,
                "the job waits on the application database",
            )
            if how == "terminate":
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = :name"
                    ),
                    {"name": name},
                )
        if how == "restart":
            restart_server()
    finally:
        blocker.invalidate() if how == "restart" else blocker.rollback()
        blocker.close()
        admin.dispose()
        if job is not None and job.poll() is None:
            try:
                job.wait(timeout=120)
            except subprocess.TimeoutExpired:
                job.kill()
    assert job is not None
    _, err = job.communicate(timeout=10)

    assert job.returncode == 1, err
    assert err.strip().splitlines()[-1].startswith(("Error:", "Failed:")), err
    check_invariants(deployment, before, SEED, killed=True)

    out = rerun(deployment, ["apply-deletions", "--execute", "--chunk-size", "4"], SEED)
    assert "0 failed" in out
    apply_done(deployment, before, SEED)
    check_invariants(deployment, before, SEED)
