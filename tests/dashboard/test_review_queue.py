"""Read models behind the pages: paging, counts, impact preview, audit filters, weekly stats."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from compliance.deletion.exclusions import exclude_records
from compliance.errors import InvalidInput
from compliance.reports import review_queue, stats
from compliance.store.models import AuditEvent, utcnow
from tests.conftest import Deployment, person
from tests.dashboard.conftest import OFFICER, pending_batch


def test_batches_are_filtered_and_paged_in_the_database(queue: Deployment) -> None:
    with queue.session() as session:
        everything = review_queue.list_batches(session, limit=500)
        pending = review_queue.list_batches(session, bucket="closed_accounts", status="pending")
        second = review_queue.list_batches(
            session, bucket="closed_accounts", status="pending", limit=4, offset=4
        )
        buckets = review_queue.batch_buckets(session)
    assert everything.total == 11
    assert buckets == ["closed_accounts", "inactive_accounts", "stale_support_tickets"]
    assert pending.total == 9 and pending.frame["records"].sum() == 44
    assert (second.total, second.pages, len(second.frame)) == (9, 3, 4)
    assert list(second.frame["batch_id"]) == list(pending.frame["batch_id"][4:8])
    assert (pending.frame["age_days"] == 0).all()


def test_a_bad_status_or_page_size_is_refused(queue: Deployment) -> None:
    with queue.session() as session:
        with pytest.raises(InvalidInput, match="status must be one of"):
            review_queue.list_batches(session, status="done")
        with pytest.raises(InvalidInput, match="page size"):
            review_queue.list_batches(session, limit=0)


def test_the_impact_preview_leaves_out_excluded_records_and_changes_nothing(
    queue: Deployment,
) -> None:
    batch_id = pending_batch(queue)
    before = queue.checksum("users", "workflows", "invoices")
    with queue.session() as session:
        full = review_queue.batch_impact(session, queue.datamap(), batch_id).set_index("table")
        first = int(review_queue.batch_records(session, batch_id).frame["record_id"].iloc[0])
        exclude_records(session, batch_id, {first: "legal hold"}, actor=person(OFFICER))
        fewer = review_queue.batch_impact(session, queue.datamap(), batch_id).set_index("table")
        records = review_queue.batch_records(session, batch_id).frame.set_index("record_id")
    assert full.loc["users", "rows"] == 5 and fewer.loc["users", "rows"] == 4
    assert full.loc["invoices", "action"] == "retain"
    assert records.loc[first, "flags"] == "excluded, manually reviewed"
    assert queue.checksum("users", "workflows", "invoices") == before


def test_the_audit_log_filters_by_actor_action_and_dates(queue: Deployment) -> None:
    today = utcnow().date()
    with queue.session() as session:
        actors, actions = review_queue.audit_filter_values(session)
        created = review_queue.audit_log(session, action="deletion_batch.created", limit=3)
        by_dpo = review_queue.audit_log(session, actor=OFFICER)
        tomorrow = review_queue.audit_log(session, since=today + timedelta(days=1))
        today_only = review_queue.audit_log(session, since=today, until=today)
        all_events = review_queue.audit_log(session).total
        # The demo's sample requests were logged days ago; everything else happened today.
        happened = session.scalars(select(AuditEvent.occurred_at)).all()
        export = review_queue.audit_log_export(session, actor="jobs")
        with pytest.raises(InvalidInput, match="after the end date"):
            review_queue.audit_log(session, since=today, until=today - timedelta(days=1))
    assert {"jobs", "test-runner", OFFICER} <= set(actors)
    assert "deletion_batch.accepted" in actions
    assert created.total == 11 and len(created.frame) == 3
    assert list(created.frame["id"]) == sorted(created.frame["id"], reverse=True)
    assert set(by_dpo.frame["action"]) == {"deletion_batch.accepted", "dsar.approved"}
    assert tomorrow.total == 0
    assert today_only.total == sum(when.date() == today for when in happened) > 0
    assert all_events == len(happened) > today_only.total
    assert set(export["actor"]) == {"jobs"} and export["details"].str.startswith("{").all()


def test_deletions_per_week_counts_the_records_applied_this_week(queue: Deployment) -> None:
    with queue.session() as session:
        weekly = stats.deletions_per_week(session)
    monday = utcnow().date() - timedelta(days=utcnow().weekday())
    assert weekly.to_dict("records") == [
        {"week": monday, "bucket": "stale_support_tickets", "applied": 14}
    ]
