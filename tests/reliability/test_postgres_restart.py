"""PostgreSQL going away in the middle of a job: the job fails cleanly, the rerun finishes.

Both ways run by default, on a private throwaway server the test starts itself
(tests/private_postgres.py: initdb + pg_ctl on a free port in a temp dir), never on the
shared server: "terminate" cuts only the job's own connections (found by the
``application_name`` its policy file gives it); "restart" really restarts that server.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from compliance.store.models import JobRun
from tests.conftest import PG_REQUIRED_ENV, Backend, Deployment, make_deployment, policy_text
from tests.private_postgres import PrivatePostgres, private_postgres
from tests.reliability.conftest import (
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


@pytest.fixture(scope="module")
def server() -> Iterator[PrivatePostgres]:
    try:
        with private_postgres() as pg:
            yield pg
    except FileNotFoundError as exc:
        if os.environ.get(PG_REQUIRED_ENV):
            pytest.fail(str(exc))
        pytest.skip(f"a private PostgreSQL server to lose: {exc}")


@pytest.fixture
def deployment(server: PrivatePostgres, tmp_path: Path) -> Iterator[Deployment]:
    backend = Backend("postgresql", tmp_path, server.url)
    d = make_deployment(backend, tmp_path / "deploy")
    yield d
    d.dispose()
    backend.cleanup()


def test_the_private_server_is_not_the_shared_one(server: PrivatePostgres) -> None:
    engine = create_engine(server.url)
    try:
        with engine.connect() as conn:
            data_dir = conn.scalar(text("SHOW data_directory"))
            port = conn.scalar(text("SHOW port"))
    finally:
        engine.dispose()
    assert Path(str(data_dir)) == server.data_dir
    assert int(str(port)) == server.port != 5432


@pytest.mark.parametrize("how", ["terminate", "restart"])
def test_a_job_cut_off_from_postgresql_fails_cleanly_and_the_rerun_finishes(
    deployment: Deployment, server: PrivatePostgres, how: str
) -> None:
    reviewed_world(deployment, SEED)
    before = snapshot(deployment)
    name = f"pd-victim-{uuid.uuid4().hex[:8]}"
    deployment.policy_path.write_text(
        policy_text(
            POLICY,
            named(deployment.database_url, name),
            named(deployment.app_url, name),
            named(deployment.billing_url, name),
        )
    )
    # Autocommit: pg_stat_activity is a snapshot for the length of a transaction.
    admin = create_engine(server.url, isolation_level="AUTOCOMMIT")
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
            server.restart()
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
    with deployment.session() as s:
        runs = s.execute(
            select(JobRun.status, JobRun.error)
            .where(JobRun.job == "apply-deletions")
            .order_by(JobRun.id)
        ).all()
    # The cut-off run recorded its crash itself, or (server away) the rerun closed it as one.
    assert [status for status, _ in runs] == ["crashed", "succeeded"]
