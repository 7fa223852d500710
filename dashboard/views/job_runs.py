"""Jobs: what the scheduled jobs did, and which have not succeeded when they should have."""

from __future__ import annotations

import streamlit as st

from compliance.errors import ComplianceError
from compliance.ops.jobruns import job_health, job_history
from compliance.roles import COMPLIANCE_OFFICER, MANAGER
from dashboard import context, widgets

HISTORY_LIMIT = 200

widgets.require_role(COMPLIANCE_OFFICER, MANAGER)
current = context.policy()
st.title("Jobs")
st.caption(
    "Every run of `python -m jobs …` is recorded. A scheduled job is overdue when its last "
    "real run (not a dry run) succeeded longer ago than its interval in `deploy/crontab` "
    "allows; a job the crontab does not schedule runs by hand and is never overdue."
)

try:
    with context.session(current) as session:
        health = job_health(session)
except ComplianceError as exc:  # the shipped crontab is missing or unreadable
    widgets.show_error(exc)
    st.stop()
overdue = health[health["overdue"]]
never = health[health["health"] == "never run"]
if not overdue.empty:
    names = ", ".join(overdue["job"])
    st.error(f"{len(overdue)} scheduled job(s) overdue: {names}. Check cron and the job's log.")
if not never.empty:
    st.info(
        f"{len(never)} scheduled job(s) have never run yet: {', '.join(never['job'])}. "
        "Schedule them (deploy/crontab or deploy/kubernetes-cronjobs.yaml); until then "
        "nothing is found, erased or alerted automatically.",
        icon=":material/schedule:",
    )
if overdue.empty and never.empty:
    st.success("Every scheduled job succeeded within its expected interval.")
widgets.table(
    health.drop(columns=["overdue"]).fillna({"last_status": "", "note": ""}),
    widths={"note": None},
    column_order=[
        "job", "health", "expected_every", "last_success_at", "last_status", "runs", "note",
    ],
)  # fmt: skip

st.subheader("History")
job = widgets.unless_all(st.selectbox("Job", [widgets.ALL, *health["job"]], key="jobs_filter"))
with context.session(current) as session:
    history = job_history(session, job=job, limit=HISTORY_LIMIT)
if history.empty:
    st.caption("No runs recorded yet.")
else:
    widgets.table_with_details(
        history.assign(dry_run=history["dry_run"].map({True: "dry run", False: "executed"})),
        ["error", "arguments", "summary"],
        key="job_rows",
        title=lambda run: f"Run {run['id']}: {run['job']} ({run['status']})",
        widths={"job": 200},
        column_order=["id", "job", "status", "dry_run", "started_at", "duration_s"],
    )
    st.caption(f"The latest {HISTORY_LIMIT} runs at most.")
