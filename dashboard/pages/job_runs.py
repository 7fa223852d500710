"""Jobs: what the scheduled jobs did, and which have not succeeded when they should have."""

from __future__ import annotations

import streamlit as st

from compliance.ops.jobruns import job_health, job_history
from compliance.roles import COMPLIANCE_OFFICER, MANAGER
from compliance.store.states import JobRunStatus
from dashboard import context, widgets

HISTORY_LIMIT = 200
STATUS_ICONS: dict[str, str] = {
    JobRunStatus.SUCCEEDED: "🟢",
    JobRunStatus.RUNNING: "🔵",
    JobRunStatus.SKIPPED: "⚪",
    JobRunStatus.REFUSED: "🟠",
    JobRunStatus.FAILED: "🔴",
    JobRunStatus.CRASHED: "🔴",
}

widgets.require_role(COMPLIANCE_OFFICER, MANAGER)
current = context.policy()
st.title("Jobs")
st.caption(
    "Every run of `python -m jobs …` is recorded. A scheduled job is overdue when its last "
    "real run (not a dry run) succeeded longer ago than its expected interval allows."
)

with context.session(current) as session:
    health = job_health(session)
overdue = health[health["overdue"]]
if overdue.empty:
    st.success("Every scheduled job succeeded within its expected interval.")
else:
    names = ", ".join(overdue["job"])
    st.error(f"{len(overdue)} scheduled job(s) overdue: {names}. Check cron and the job's log.")
st.dataframe(
    health.assign(overdue=health["overdue"].map({True: "🔴 overdue", False: "🟢 ok"})),
    hide_index=True,
    width="stretch",
    column_config={
        "job": "Job",
        "expected_every": "Expected every",
        "last_success_at": st.column_config.DatetimeColumn("Last success (UTC)"),
        "last_run_at": st.column_config.DatetimeColumn("Last run (UTC)"),
        "last_status": "Last status",
        "runs": "Runs",
        "overdue": "Health",
        "note": "Note",
    },
)

st.subheader("History")
job = widgets.unless_all(st.selectbox("Job", [widgets.ALL, *health["job"]], key="jobs_filter"))
with context.session(current) as session:
    history = job_history(session, job=job, limit=HISTORY_LIMIT)
if history.empty:
    st.caption("No runs recorded yet.")
else:
    st.dataframe(
        history.assign(status=[f"{STATUS_ICONS.get(s, '⚪')} {s}" for s in history["status"]]),
        hide_index=True,
        width="stretch",
        column_config={
            "started_at": st.column_config.DatetimeColumn("Started (UTC)"),
            "finished_at": st.column_config.DatetimeColumn("Finished (UTC)"),
            "duration_s": st.column_config.NumberColumn("Seconds", format="%.1f"),
        },
    )
    st.caption(f"The latest {HISTORY_LIMIT} runs at most.")
