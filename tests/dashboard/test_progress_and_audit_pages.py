"""The Progress and Audit log pages: read-only figures, filters, CSV downloads."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from compliance.dsar.delivery import deliver_export
from compliance.dsar.requests import submit
from compliance.reports.dsar_stats import dsar_overview, list_dsar_requests
from tests.conftest import DEMO_POLICY, Deployment, person
from tests.dashboard.conftest import (
    MANAGER,
    OFFICER,
    SUPPORT,
    OpenApp,
    decide_and_erase,
    purge,
    texts,
)
from tests.smtp_server import Inbox, mailing_to
from tests.smtp_server import smtp_inbox as smtp_inbox  # the fixture


def test_progress_shows_weekly_deletions_and_dsar_figures_with_csv_downloads(
    queue: Deployment, open_app: OpenApp, smtp_inbox: Inbox
) -> None:
    queue.write_policy(mailing_to(smtp_inbox, DEMO_POLICY, auto_deliver=False))
    with queue.session() as session:
        # The demo's export is built, not sent; support sends it: completed on delivery.
        (built,) = list_dsar_requests(session, status="ready")
        deliver_export(
            session, queue.policy(), built.reference, actor=person(SUPPORT),
            download_url="http://x", execute=True,
        )  # fmt: skip
        submit(
            session, queue.policy(), queue.app_engine, kind="access", subject_id="3",
            requested_by=person(SUPPORT), execute=True,
        )  # fmt: skip
        # The demo queue's requests are still open (one overdue), plus the one just logged.
        overview = dsar_overview(session)
    open_requests = overview.open_count
    assert open_requests == 4
    assert len(overview.overdue) == 1, "the demo logs one request 40 days ago"
    at = open_app(MANAGER)
    assert not at.exception, at.exception

    assert at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Open requests"] == str(open_requests)
    # The demo's one completed request was delivered in time; its overdue one is listed.
    assert metrics["Completed on time"] == "100%"
    shown = at.dataframe[-1].value
    assert list(shown["reference"]) == list(overview.overdue["reference"])
    # Overdue requests are work to do, shown as a warning: the red of an error means a fault.
    assert "1 request(s) overdue" in [w.value for w in at.warning] and not at.error
    downloads = [d.label for d in at.get("download_button")]
    assert downloads == [
        "Buckets as CSV",
        "Backlog per system as CSV",
        "Outcomes per bucket and week as CSV",
        "DSAR requests per month as CSV",
        "DSAR requests per kind as CSV",
        "DSAR requests per jurisdiction as CSV",
        "Overdue requests as CSV",
    ]
    # Per week: the demo's applied batch shows as erased records in the outcome table.
    weekly = next(d.value for d in at.dataframe if "erased" in d.value.columns)
    assert weekly["erased"].sum() == 14
    monthly = next(d.value for d in at.dataframe if "received" in d.value.columns)
    assert monthly["received"].sum() == open_requests + 1  # the open ones and the completed one
    # Per kind and per jurisdiction: the same requests, split; the demo's all fall under GDPR.
    per_kind = next(d.value for d in at.dataframe if {"kind", "received"} <= set(d.value.columns))
    assert per_kind["received"].sum() == open_requests + 1
    per_law = next(d.value for d in at.dataframe if "jurisdiction" in d.value.columns)
    assert per_law[["jurisdiction", "received", "overdue"]].values.tolist() == [
        ["gdpr", open_requests + 1, 1]
    ]


def test_progress_shows_the_same_weeks_after_purge(queue: Deployment, open_app: OpenApp) -> None:
    decide_and_erase(queue)

    def weekly_and_buckets() -> tuple[pd.DataFrame, pd.DataFrame]:
        st.cache_data.clear()  # what a manager sees once the page's short cache has expired
        at = open_app(MANAGER)
        assert not at.exception, at.exception
        tables = [d.value for d in at.dataframe]
        return (
            next(t for t in tables if "erased" in t.columns),
            next(t for t in tables if "kept" in t.columns and "erased" not in t.columns),
        )

    weekly, buckets = weekly_and_buckets()
    summed = weekly.groupby("bucket")[["erased", "kept"]].sum()
    # The demo's applied batch, and the work on closed_accounts: the record excluded from the
    # accepted batch and the rejected batch's five are kept, the other four erased; the weeks
    # add up to the per-bucket table.
    assert summed.loc["stale_support_tickets", "erased"] == 14
    assert summed.loc["closed_accounts"].tolist() == [4, 1 + 5]
    per_bucket = buckets.set_index("bucket")
    assert per_bucket.loc["closed_accounts", ["applied", "kept"]].tolist() == [4, 6]

    assert purge(queue, "closed_accounts", "stale_support_tickets") == 14 + 4 + 6

    weekly_after, buckets_after = weekly_and_buckets()
    pd.testing.assert_frame_equal(weekly_after, weekly)
    pd.testing.assert_frame_equal(buckets_after, buckets)


def test_the_audit_log_filters_by_actor_and_verifies_the_chain(
    queue: Deployment, open_app: OpenApp
) -> None:
    at = open_app(OFFICER)
    at.switch_page("views/audit.py").run()
    assert not at.exception, at.exception
    assert any(t.startswith("Hash chain verified") for t in texts(at, "success"))
    everyone = at.dataframe[0].value
    assert {"test-runner", "jobs", OFFICER} <= set(everyone["actor"])

    at.selectbox(key="audit_actor").set_value(OFFICER).run()
    mine = at.dataframe[0].value
    assert set(mine["actor"]) == {OFFICER}
    assert "deletion_batch.accepted" in set(mine["action"])

    at.selectbox(key="audit_action").set_value("deletion_batch.created").run()
    assert at.dataframe[0].value.empty
    assert "Nothing to show." in texts(at, "caption")
