"""Progress a manager shows a regulator: outcomes per bucket and week, DSAR figures per month."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy import func, select, update

from compliance.clock import use_clock
from compliance.deletion.apply import apply_deletions
from compliance.deletion.review import review_batch
from compliance.dsar.decisions import review_dsar
from compliance.dsar.delivery import deliver_export
from compliance.dsar.processing import process_dsar_requests
from compliance.dsar.requests import get_dsar, submit_dsar
from compliance.policy.model import DSAR_ERASURE_BUCKET
from compliance.reports.dsar_stats import dsar_overview, dsar_per_month
from compliance.reports.stats import bucket_progress, deletions_per_week, outcomes_per_week
from compliance.roles import identify
from compliance.store.models import DeletionRecord, DsarRequest, ErasureTask, utcnow
from compliance.store.states import DsarStatus
from compliance.systems.manual_tasks import confirm_task
from tests.conftest import DEMO_POLICY, Deployment, person
from tests.dashboard.conftest import (  # noqa: F401
    OFFICER,
    SUPPORT,
    decide_and_erase,
    pending_batch,
    purge,
    queue,
)


def test_each_record_counts_once_in_the_week_of_its_outcome(queue: Deployment) -> None:  # noqa: F811
    rejected = pending_batch(queue, "closed_accounts")
    with queue.session() as s:
        officer = identify(queue.policy(), OFFICER)
        review_batch(s, rejected, "reject", reviewer=officer, reason="Test accounts", execute=True)
        # A record whose erasure failed (the application database refused it).
        first = s.scalars(
            select(DeletionRecord.id)
            .where(DeletionRecord.bucket == "inactive_accounts")
            .order_by(DeletionRecord.id)
            .limit(1)
        ).one()
        s.execute(
            update(DeletionRecord)
            .where(DeletionRecord.id == first)
            .values(accepted_for_deletion=True, deletion_error="refused", updated_at=utcnow())
        )
        s.commit()
        weekly = outcomes_per_week(s)

    totals = weekly.groupby("bucket")[["erased", "kept", "failed", "pending"]].sum()
    assert totals.loc["stale_support_tickets", "erased"] == 14  # the demo's applied batch
    assert totals.loc["closed_accounts", "kept"] == 5
    assert totals.loc["inactive_accounts", "failed"] == 1
    # Found this week and neither erased nor kept: the rest of closed_accounts and inactive.
    assert totals.loc["closed_accounts", "pending"] > 0
    assert totals.loc["closed_accounts", "erased"] == 0
    assert list(weekly.columns) == ["week", "bucket", "erased", "kept", "failed", "pending"]


def progress(d: Deployment, now: datetime) -> dict[str, pd.DataFrame]:
    """Every figure the Progress page shows about deletions and DSARs, as of ``now``."""
    with d.session() as s:
        overview = dsar_overview(s, now=now)
        return {
            "per bucket": bucket_progress(s),
            "per week": outcomes_per_week(s, now=now),
            "erased per week": deletions_per_week(s, now=now),
            "DSAR per month": dsar_per_month(s, now=now),
            "DSAR now": pd.DataFrame(
                [{**overview.by_status, "on_time": overview.on_time_rate,
                  "median": overview.median_days_to_complete, "total": overview.total}]
            ),
        }  # fmt: skip


def erase_on_request(d: Deployment, subject_id: str, now: datetime) -> None:
    """An erasure request approved, erased in every system and completed at ``now``."""
    # Accepted with the request's approval: no batch to review on the way.
    d.write_policy(DEMO_POLICY.replace("erasure_review = true", "erasure_review = false"))
    policy, datamap = d.policy(), d.datamap()
    with use_clock(lambda: now), d.session() as s:
        request = submit_dsar(
            s, policy, d.app_engine, kind="erasure", subject_id=subject_id,
            requested_by=person(OFFICER), execute=True,
        )  # fmt: skip
        assert request.reference is not None
        review_dsar(
            s, request.reference, "approve", reviewer=person(OFFICER),
            four_eyes=policy.review.four_eyes, policy=policy, execute=True,
        )  # fmt: skip
        process_dsar_requests(s, datamap, actor="jobs", execute=True)
        apply_deletions(s, datamap, actor="jobs", execute=True, bucket=DSAR_ERASURE_BUCKET)
        for task in s.scalars(select(ErasureTask).where(ErasureTask.status != "done")):
            confirm_task(s, task.id, actor=person(OFFICER), note="Removed by hand", execute=True)
        process_dsar_requests(s, datamap, actor="jobs", execute=True)
        assert get_dsar(s, request.reference).status == DsarStatus.COMPLETED


def test_no_progress_figure_changes_when_purge_removes_the_bookkeeping(
    queue: Deployment,  # noqa: F811
) -> None:
    # A record excluded this week; its batch accepted, the next one rejected, and the
    # accepted records erased the week after; an erasure request completed that week too.
    next_week = utcnow() + timedelta(days=7)
    excluded = decide_and_erase(queue, decided_at=next_week)
    erase_on_request(queue, "21", next_week)
    before = progress(queue, next_week)

    weekly = before["per week"].set_index(["bucket", "week"])
    this_monday = utcnow().date() - timedelta(days=utcnow().weekday())
    closed = weekly.loc["closed_accounts"]
    # Kept counts in the week of each decision: the exclusion now, the rejection next week.
    assert closed.loc[this_monday, "kept"] == 1
    assert closed.loc[this_monday + timedelta(days=7), ["erased", "kept"]].tolist() == [4, 5]
    # Summed over the weeks, erased and kept are the per-bucket table's.
    per_bucket = before["per bucket"].set_index("bucket")
    summed = weekly.groupby("bucket")[["erased", "kept"]].sum()
    for bucket in ("closed_accounts", "stale_support_tickets", DSAR_ERASURE_BUCKET):
        assert summed.loc[bucket].tolist() == per_bucket.loc[bucket, ["applied", "kept"]].tolist()
    assert per_bucket.loc["stale_support_tickets", "applied"] == 14
    assert per_bucket.loc["closed_accounts", ["applied", "kept"]].tolist() == [4, 1 + 5]

    removed = purge(
        queue, "closed_accounts", "stale_support_tickets", DSAR_ERASURE_BUCKET, now=next_week
    )
    assert removed == 14 + 4 + 1 + 5 + 1  # erased, kept, and the request's record
    with queue.session() as s:
        assert s.get(DeletionRecord, excluded) is None
        assert (
            s.scalar(select(func.count()).where(DeletionRecord.bucket == DSAR_ERASURE_BUCKET)) == 0
        )

    after = progress(queue, next_week)
    for figure, frame in before.items():
        pd.testing.assert_frame_equal(after[figure], frame, obj=figure)


def test_dsar_figures_per_month_count_received_completed_and_on_time(queue: Deployment) -> None:  # noqa: F811
    with queue.session() as s:
        ready = s.scalars(select(DsarRequest.reference).where(DsarRequest.status == "ready")).all()
        assert dsar_per_month(s)["completed"].sum() == 0  # built is not done: nothing delivered
        (reference,) = ready  # the demo's access request, built and waiting to be sent
        deliver_export(s, queue.policy(), reference, actor=person(SUPPORT),
                       download_url="http://127.0.0.1:8503", execute=True)  # fmt: skip
        monthly = dsar_per_month(s)
    assert monthly["received"].sum() == 4  # the demo's four requests
    assert monthly["completed"].sum() == 1 and monthly["on_time"].sum() == 1
    done = monthly[monthly["completed"] > 0].iloc[0]
    assert done["on_time_rate"] == 1.0
    assert 11 <= done["median_days"] <= 13  # logged 12 days ago, completed on setup
