"""Progress: whether the company keeps its deadlines, for managers and officers (read-only)."""

from __future__ import annotations

import altair as alt
import streamlit as st

from compliance.roles import COMPLIANCE_OFFICER, MANAGER
from dashboard import context, widgets

WEEKS = 12
# Shown in this order; the CSV has every column (records in total, not batched yet...).
BUCKET_HEADERS = {
    "bucket": "Bucket",
    "batches_pending": "Batches pending",
    "batches_accepted": "Accepted",
    "batches_rejected": "Rejected",
    "awaiting_review": "Records to review",
    "pending_apply": "To erase",
    "applied": "Erased",
    "failed": "Failed",
    "kept": "Kept",
}

widgets.require_role(COMPLIANCE_OFFICER, MANAGER)
url = context.policy().database_url
st.title("Progress")

st.subheader("Deletions per bucket")
buckets = context.bucket_progress(url)
widgets.table(
    buckets,
    headers=BUCKET_HEADERS,
    widths={c: 110 for c in BUCKET_HEADERS if c != "bucket"},
    column_order=list(BUCKET_HEADERS),
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
    widgets.table(overview.overdue)
widgets.csv_download("Overdue requests as CSV", overview.overdue, "dsar_overdue.csv", "csv_overdue")
