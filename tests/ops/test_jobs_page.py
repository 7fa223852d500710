"""Job history: every run is recorded; a scheduled job that stopped succeeding is flagged."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from compliance.ops.jobruns import job_health, job_history
from compliance.ops.schedule import shipped_intervals
from compliance.store.models import JobRun, utcnow
from tests.conftest import Deployment
from tests.dashboard.conftest import open_signed_in

NOW = utcnow()


def ran(d: Deployment, job: str, hours_ago: float, status: str = "succeeded", **kw: object) -> None:
    started = NOW - timedelta(hours=hours_ago)
    with d.session() as s:
        s.add(
            JobRun(
                job=job,
                arguments=kw.pop("arguments", {}),
                dry_run=kw.pop("dry_run", False),
                started_at=started,
                finished_at=None if status == "running" else started + timedelta(seconds=5),
                status=status,
                error=kw.pop("error", None),
            )
        )
        s.commit()


@pytest.fixture
def history(deployment: Deployment) -> Deployment:
    ran(deployment, "verify-audit-log", hours_ago=2)
    ran(deployment, "retention-cleanup", hours_ago=72)
    ran(deployment, "retention-cleanup", hours_ago=1, status="failed", error="1 category failed")
    ran(deployment, "purge-compliance-data", hours_ago=24 * 6)
    ran(deployment, "apply-deletions", hours_ago=1, dry_run=True)  # a dry run proves nothing
    ran(deployment, "review-batch", hours_ago=24 * 90)  # by hand: never overdue
    return deployment


def health(d: Deployment) -> dict[str, dict]:
    with d.session() as s:
        frame = job_health(s, now=NOW)
    return {row["job"]: row for row in frame.to_dict("records")}


def test_a_scheduled_job_without_a_recent_real_success_is_overdue(history: Deployment) -> None:
    jobs = health(history)

    assert jobs["verify-audit-log"]["overdue"] is False
    assert jobs["purge-compliance-data"]["overdue"] is False  # weekly, 6 days ago
    late = jobs["retention-cleanup"]
    assert (late["overdue"], late["last_status"], late["runs"]) == (True, "failed", 2)
    assert late["last_success_at"] == NOW - timedelta(hours=72) + timedelta(seconds=5)
    assert late["note"] == "no success for 2 days"
    assert (jobs["apply-deletions"]["overdue"], jobs["apply-deletions"]["note"]) == (
        True,
        "never succeeded",
    )
    never = jobs["process-dsar-requests"]
    assert (never["overdue"], never["health"], never["runs"]) == (False, "never run", 0)
    assert jobs["review-batch"]["overdue"] is False
    assert jobs["review-batch"]["expected_every"] == "by hand"


def test_each_job_is_expected_as_often_as_the_shipped_crontab_runs_it(
    deployment: Deployment,
) -> None:
    jobs = health(deployment)

    assert jobs["process-dsar-requests"]["expected_every"] == "15 minutes"
    assert jobs["anchor-audit-log"]["expected_every"] == "1 hour"
    assert jobs["apply-deletions"]["expected_every"] == "1 day"
    assert jobs["purge-compliance-data"]["expected_every"] == "1 week"
    assert "review-batch" not in jobs  # not scheduled and never run: not listed


def test_an_hourly_job_is_overdue_within_hours_and_says_so_in_hours(deployment: Deployment) -> None:
    ran(deployment, "anchor-audit-log", hours_ago=1.5)
    assert health(deployment)["anchor-audit-log"]["overdue"] is False
    ran(deployment, "process-dsar-requests", hours_ago=3.5)

    late = health(deployment)["process-dsar-requests"]
    assert (late["overdue"], late["note"]) == (True, "no success for 3 hours")


def test_a_run_that_never_finished_is_pointed_out(deployment: Deployment) -> None:
    ran(deployment, "apply-deletions", hours_ago=50, status="running")

    assert health(deployment)["apply-deletions"]["note"] == (
        "never succeeded; last run never finished (killed?)"
    )


def test_history_lists_the_newest_runs_first_and_filters_by_job(history: Deployment) -> None:
    with history.session() as s:
        everything = job_history(s)
        retention = job_history(s, job="retention-cleanup")

    assert len(everything) == 6
    assert list(retention["status"]) == ["failed", "succeeded"]
    assert retention["error"].iloc[0] == "1 category failed"


def test_every_cli_run_is_recorded_with_its_arguments_and_summary(demo: Deployment) -> None:
    result = demo.run("--json", "retention-cleanup", "--chunk-size", "50")
    assert result.exit_code == 0, result.output
    refused = demo.run("retention-cleanup", "--category", "nope", "--execute")
    assert refused.exit_code == 2

    with demo.session() as s:
        newest, first = job_history(s).to_dict("records")
    assert (first["job"], first["status"], first["dry_run"]) == (
        "retention-cleanup",
        "succeeded",
        True,
    )
    assert json.loads(first["arguments"]) == {"category": None, "chunk_size": 50, "execute": False}
    assert json.loads(first["summary"])["rows"] == json.loads(result.stdout)["rows"]
    assert first["finished_at"] >= first["started_at"]
    assert (newest["status"], newest["dry_run"]) == ("refused", False)
    assert newest["error"].startswith("unknown retention category 'nope'")


# ---------------------------------------------------------------- the page


@pytest.fixture
def page(history: Deployment, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppTest]:
    """The dashboard opened as the demo compliance officer, on the Jobs page."""
    at = open_signed_in(history, monkeypatch, "dpo@example.com")
    at.switch_page("views/job_runs.py").run()
    yield at
    st.cache_data.clear()
    st.cache_resource.clear()


def test_the_jobs_page_flags_overdue_jobs_and_shows_the_history(page: AppTest) -> None:
    assert not page.exception, page.exception
    (error,) = [str(e.value) for e in page.error]
    # Of the scheduled jobs: 2 healthy, 2 overdue, the rest never ran (said calmly, below).
    assert error.startswith("2 scheduled job(s) overdue: ")
    assert "retention-cleanup" in error and "apply-deletions" in error
    (info,) = [str(e.value) for e in page.info]
    assert info.startswith(f"{len(shipped_intervals()) - 4} scheduled job(s) have never run yet: ")
    health_table = page.dataframe[0].value.set_index("job")
    assert health_table.loc["retention-cleanup", "health"] == "overdue"
    assert health_table.loc["verify-audit-log", "health"] == "ok"
    assert health_table.loc["process-dsar-requests", "health"] == "never run"
    assert len(page.dataframe[1].value) == 6

    page.selectbox(key="jobs_filter").set_value("retention-cleanup").run()
    assert list(page.dataframe[1].value["status"]) == ["failed", "succeeded"]


def test_a_fresh_install_is_told_to_schedule_its_jobs_without_alarm(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_signed_in(deployment, monkeypatch, "ceo@example.com")
    at.switch_page("views/job_runs.py").run()
    try:
        assert not at.exception, at.exception
        assert not at.error
        assert next(str(i.value) for i in at.info).startswith(
            f"{len(shipped_intervals())} scheduled job(s) have never run yet"
        )
        assert set(at.dataframe[0].value["health"]) == {"never run"}
    finally:
        st.cache_data.clear()
        st.cache_resource.clear()
