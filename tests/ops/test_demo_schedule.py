"""The demo runs every job green: each line of deploy/crontab, once, in order, exits 0."""

from __future__ import annotations

import pytest
import streamlit as st
from sqlalchemy import select

from compliance.dsar.desk import timeline
from compliance.ops.jobruns import job_health
from compliance.ops.schedule import SCHEDULE_FILE, parse_crontab, shipped_intervals
from compliance.store.models import DsarRequest
from tests.conftest import Deployment, ok
from tests.dashboard.conftest import open_signed_in

#: The demo as a newcomer has it: no Slack token, no SMTP password.
NO_SECRETS: dict[str, str | None] = {"SLACK_BOT_TOKEN": None, "SMTP_PASSWORD": None}


def test_every_line_of_the_shipped_crontab_runs_green_on_the_demo(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok(deployment.run("init-db", "--demo", "--demo-users", "300", env=NO_SECRETS))
    with deployment.session() as s:  # each sample request's timeline starts the day it says
        requests = s.scalars(select(DsarRequest).order_by(DsarRequest.id)).all()
        assert len({r.requested_at.date() for r in requests}) == len(requests) > 1
        for request in requests:
            first = timeline(s, request.reference)[0]
            assert (first.action, first.occurred_at) == ("dsar.submitted", request.requested_at)

    schedule = parse_crontab(SCHEDULE_FILE.read_text())
    for run in schedule:
        result = deployment.run(run.job, *run.arguments, env=NO_SECRETS)
        assert result.exit_code == 0, f"{run.job} {' '.join(run.arguments)}: {result.output}"

    with deployment.session() as s:
        health = job_health(s).set_index("job")
    scheduled = health.loc[sorted(shipped_intervals())]
    assert {run.job for run in schedule} == set(scheduled.index)
    assert not health["overdue"].any(), health
    assert set(scheduled["health"]) == {"ok"}, scheduled
    assert set(scheduled["last_status"]) == {"succeeded"}, scheduled
    anchor_file = deployment.policy().audit.anchor_file
    assert anchor_file is not None and anchor_file.is_file()

    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    at = open_signed_in(deployment, monkeypatch, "ceo@example.com")
    try:
        at.switch_page("views/job_runs.py").run()
        assert not at.exception, at.exception
        assert not at.error, [e.value for e in at.error]
        assert [str(s.value) for s in at.success] == [
            "Every scheduled job succeeded within its expected interval."
        ]
        page_health = at.dataframe[0].value.set_index("job")
        assert set(page_health.loc[sorted(shipped_intervals()), "health"]) == {"ok"}
    finally:
        st.cache_data.clear()
        st.cache_resource.clear()
