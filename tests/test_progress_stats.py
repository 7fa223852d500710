"""Progress a manager shows a regulator: outcomes per bucket and week, DSAR figures per month."""

from __future__ import annotations

from sqlalchemy import select, update

from compliance.deletion.batches import review_batch
from compliance.reports.dsar_stats import dsar_per_month
from compliance.reports.stats import outcomes_per_week
from compliance.roles import identify
from compliance.store.models import DeletionRecord, utcnow
from tests.conftest import Deployment
from tests.dashboard.conftest import OFFICER, pending_batch, queue  # noqa: F401


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

    totals = weekly.groupby("bucket")[["erased", "rejected", "failed", "pending"]].sum()
    assert totals.loc["stale_support_tickets", "erased"] == 14  # the demo's applied batch
    assert totals.loc["closed_accounts", "rejected"] == 5
    assert totals.loc["inactive_accounts", "failed"] == 1
    # Found this week and neither erased nor kept: the rest of closed_accounts and inactive.
    assert totals.loc["closed_accounts", "pending"] > 0
    assert totals.loc["closed_accounts", "erased"] == 0
    assert list(weekly.columns) == ["week", "bucket", "erased", "rejected", "failed", "pending"]


def test_dsar_figures_per_month_count_received_completed_and_on_time(queue: Deployment) -> None:  # noqa: F811
    with queue.session() as s:
        monthly = dsar_per_month(s)
    assert monthly["received"].sum() == 4  # the demo's four requests
    assert monthly["completed"].sum() == 1 and monthly["on_time"].sum() == 1
    done = monthly[monthly["completed"] > 0].iloc[0]
    assert done["on_time_rate"] == 1.0
    assert 11 <= done["median_days"] <= 13  # logged 12 days ago, completed on setup
