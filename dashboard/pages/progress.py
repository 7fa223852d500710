"""Progress: whether the company keeps its deadlines, for managers and officers (read-only)."""

from __future__ import annotations

import altair as alt
import streamlit as st

from compliance.roles import COMPLIANCE_OFFICER, MANAGER
from compliance.store.states import BatchStatus, RecordState
from dashboard import context, widgets

WEEKS = 12

widgets.require_role(COMPLIANCE_OFFICER, MANAGER)
url = context.policy().database_url
st.title("Progress")

st.subheader("Deletions per bucket")
buckets = context.bucket_progress(url)
st.dataframe(
    buckets.rename(
        columns={
            **{f"batches_{s.value}": f"batches {s.value}" for s in BatchStatus},
            RecordState.APPLIED.value: "records applied",
            RecordState.FAILED.value: "records failed",
            RecordState.PENDING_APPLY.value: "records pending",
            RecordState.AWAITING_REVIEW.value: "records awaiting review",
        }
    ),
    hide_index=True,
    width="stretch",
)
widgets.csv_download("Buckets as CSV", buckets, "bucket_progress.csv", key="csv_buckets")

st.subheader(f"Deletions per week (last {WEEKS} weeks)")
weekly = context.deletions_per_week(url, WEEKS)
if weekly.empty:
    st.caption(f"No records were erased in the last {WEEKS} weeks.")
else:
    st.altair_chart(
        alt.Chart(weekly.assign(week=weekly["week"].astype(str)))
        .mark_bar()
        .encode(
            x=alt.X("week:O", title="Week starting (Monday, UTC)"),
            y=alt.Y("applied:Q", title="Records erased"),
            color=alt.Color("bucket:N"),
            tooltip=["week:O", "bucket:N", "applied:Q"],
        ),
        width="stretch",
    )
widgets.csv_download("Deletions per week as CSV", weekly, "deletions_per_week.csv", "csv_weekly")

st.subheader("DSAR requests")
overview = context.dsar_overview(url)
on_time, median, open_count = st.columns(3)
on_time.metric(
    "Completed on time",
    "–" if overview.on_time_rate is None else f"{overview.on_time_rate:.0%}",
    help=f"of {overview.completed_count} completed requests",
)
median.metric(
    "Median days to complete",
    "–" if overview.median_days_to_complete is None else f"{overview.median_days_to_complete:g}",
)
open_count.metric("Open requests", overview.open_count)
if overview.overdue.empty:
    st.success("No request is overdue.")
else:
    st.error(f"{len(overview.overdue)} request(s) overdue")
    st.dataframe(
        overview.overdue,
        hide_index=True,
        width="stretch",
        column_config=widgets.labels(overview.overdue.columns),
    )
widgets.csv_download("Overdue requests as CSV", overview.overdue, "dsar_overdue.csv", "csv_overdue")
