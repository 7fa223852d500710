"""Progress: whether the company keeps its deadlines, for managers and officers (read-only)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from compliance.reports.stats import OUTCOMES
from compliance.roles import COMPLIANCE_OFFICER, MANAGER
from compliance.store.states import RecordState
from dashboard import context, widgets

WEEKS = 12
MONTHS = 12
OUTCOME_COLORS = ["#2e7d32", "#757575", "#c62828", "#f9a825"]  # erased kept failed pending
# Shown in this order; the CSV has every column (records in total, not batched yet...).
BUCKET_HEADERS = {
    "bucket": "Bucket",
    "batches_pending": "Batches to review",
    RecordState.AWAITING_REVIEW.value: "Records to review",
    RecordState.PENDING_APPLY.value: "To erase",
    RecordState.APPLIED.value: "Erased",
    RecordState.FAILED.value: "Failed",
    "kept": "Kept",
}


def with_median_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Nothing completed has no median: an empty cell, not "None"."""
    text = frame["median_days"].map(lambda d: "" if pd.isna(d) else f"{d:g}")
    return frame.assign(median_days=text)


widgets.require_role(COMPLIANCE_OFFICER, MANAGER)
policy = context.policy()
url = policy.database_url
st.title("Progress")

st.subheader("Deletions per bucket")
buckets = context.bucket_progress(url)
widgets.table(
    buckets,
    headers=BUCKET_HEADERS,
    widths={"bucket": "medium", **{c: 115 for c in BUCKET_HEADERS if c != "bucket"}},
    column_order=list(BUCKET_HEADERS),
)
widgets.csv_download("Buckets as CSV", buckets, "bucket_progress.csv", key="csv_buckets")

st.subheader("Backlog per system")
st.caption(
    "A record is erased, and a request completed, only when every system it reaches says "
    "done: waiting tasks sit with a service (webhook) or a person (manual step)."
)
backlog = context.system_backlog(context.policy())
if backlog.empty:
    st.caption("No request has reached any system yet.")
else:
    widgets.table(backlog)
widgets.csv_download("Backlog per system as CSV", backlog, "system_backlog.csv", key="csv_systems")

st.subheader(f"Outcomes per week (last {WEEKS} weeks)")
st.caption(
    "Each record counts once, in the week (Monday, UTC) of what happened to it: erased, "
    "kept (a reviewer excluded it or rejected its batch), failed (its last erasure attempt), "
    "or pending (found that week and not yet erased or kept). Records purged since still "
    "count, in the same week."
)
weekly = context.outcomes_per_week(url, WEEKS)
chosen = st.selectbox("Bucket", [widgets.ALL, *sorted(set(weekly["bucket"]))], key="week_bucket")
shown_weeks = weekly if chosen == widgets.ALL else weekly[weekly["bucket"] == chosen]
if shown_weeks.empty:
    st.caption(f"Nothing happened to any deletion record in the last {WEEKS} weeks.")
else:
    long = shown_weeks.melt(
        id_vars=["week", "bucket"], value_vars=OUTCOMES, var_name="outcome", value_name="records"
    )
    # Vega-Lite specs as plain dicts: Altair builds the same JSON but validates it against
    # the whole schema on every render, most of this page's time.
    st.vega_lite_chart(
        long.assign(week=long["week"].astype(str)),
        {
            "mark": "bar",
            "encoding": {
                "x": {"field": "week", "type": "ordinal", "title": "Week starting (Monday, UTC)"},
                "y": {"field": "records", "aggregate": "sum", "type": "quantitative",
                      "title": "Records"},
                "color": {
                    "field": "outcome", "type": "nominal", "title": "Outcome", "sort": OUTCOMES,
                    "scale": {"domain": OUTCOMES, "range": OUTCOME_COLORS},
                },
                "tooltip": [
                    {"field": "week", "type": "ordinal"},
                    {"field": "outcome", "type": "nominal"},
                    {"field": "records", "aggregate": "sum", "type": "quantitative"},
                ],
            },
        },
        width="stretch",
    )  # fmt: skip
    widgets.table(shown_weeks, widths={o: 90 for o in OUTCOMES})
widgets.csv_download(
    "Outcomes per bucket and week as CSV", weekly, "outcomes_per_week.csv", "csv_weekly"
)

st.subheader(f"DSAR requests per month (last {MONTHS} months)")
monthly = context.dsar_per_month(url, MONTHS)
if monthly.empty:
    st.caption(f"No request was received in the last {MONTHS} months.")
else:
    st.vega_lite_chart(
        monthly,
        {
            "mark": "bar",
            "encoding": {
                "x": {"field": "month", "type": "ordinal", "title": "Month received (UTC)"},
                "y": {"field": "received", "type": "quantitative", "title": "Requests received"},
                "tooltip": [
                    {"field": "month", "type": "ordinal"},
                    *({"field": f, "type": "quantitative"}
                      for f in ("received", "completed", "on_time_rate", "median_days")),
                ],
            },
        },
        width="stretch",
    )  # fmt: skip
    widgets.table(
        with_median_text(monthly),
        headers={"on_time_rate": "Completed on time", "median_days": "Median days to complete"},
        column_order=["month", "received", "completed", "on_time", "on_time_rate", "median_days"],
    )
widgets.csv_download("DSAR requests per month as CSV", monthly, "dsar_per_month.csv", "csv_monthly")

# A desk serving several kinds of data subject splits by kind of subject too.
splits = ["kind", "jurisdiction"]
per = "per kind and per jurisdiction"
if policy.multiple_subject_types:
    splits.append("subject_type")
    per = "per kind, per jurisdiction and per kind of data subject"
st.subheader(f"DSAR requests {per} (last {MONTHS} months)")
st.caption(
    "Requests received in the last months. On time: completed by the deadline in force, which "
    "each request's jurisdiction set (with any extension); open and overdue count them now."
)
for by in splits:
    split = context.dsar_split(url, by, MONTHS)
    if split.empty:
        st.caption(f"No request was received in the last {MONTHS} months.")
        break
    widgets.table(
        with_median_text(split),
        headers={"on_time_rate": "Completed on time", "median_days": "Median days to complete"},
    )
    widgets.csv_download(
        f"DSAR requests per {by} as CSV", split, f"dsar_per_{by}.csv", f"csv_per_{by}"
    )

st.subheader("DSAR requests now")
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
    st.warning(f"{len(overview.overdue)} request(s) overdue")  # a state to act on, not a fault
    widgets.table(overview.overdue)
widgets.csv_download("Overdue requests as CSV", overview.overdue, "dsar_overdue.csv", "csv_overdue")
