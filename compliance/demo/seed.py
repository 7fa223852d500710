"""A demo review queue, so the dashboard shows real work the first time it opens."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from compliance import clock
from compliance.deletion.apply import apply_deletions
from compliance.deletion.batches import create_deletion_batches
from compliance.deletion.records import create_deletion_records
from compliance.deletion.review import review_batch
from compliance.policy.datamap import DataMap
from compliance.roles import identify
from compliance.store.models import DeletionRecord, utcnow

DEMO_REVIEWER = "dpo@example.com"


def seed_demo_workflow(session: Session, datamap: DataMap, *, actor: str) -> dict[str, int]:
    """Records and batches for two demo buckets, one batch accepted and applied.

    ``closed_accounts`` is left untouched for the README's command-line walk-through.
    Does nothing if the compliance database already holds records.
    """
    if session.scalar(select(func.count()).select_from(DeletionRecord)):
        return {}
    seeded: dict[str, int] = {}
    for bucket, size in (("stale_support_tickets", 50), ("inactive_accounts", 100)):
        if bucket not in datamap.policy.buckets:
            continue
        create_deletion_records(session, datamap, bucket, actor=actor, execute=True)
        batches = create_deletion_batches(
            session, datamap.policy, bucket, actor=actor, execute=True, max_batch_size=size
        )
        seeded[f"{bucket} batches"] = batches.batches
    stale = session.scalars(
        select(DeletionRecord.deletion_batch_id)
        .where(DeletionRecord.bucket == "stale_support_tickets")
        .order_by(DeletionRecord.deletion_batch_id)
        .limit(1)
    ).first()
    if stale is not None:
        officer = identify(datamap.policy, DEMO_REVIEWER)
        review_batch(
            session, stale, "accept", reviewer=officer, policy=datamap.policy, execute=True
        )
        result = apply_deletions(
            session, datamap, actor=actor, execute=True, bucket="stale_support_tickets"
        )
        seeded["applied"] = result.applied
    seeded["DSAR requests"] = _seed_dsar_requests(session, datamap)
    return seeded


def seed_fan_out(session: Session, datamap: DataMap, *, actor: str) -> dict[str, int]:
    """One inactive_accounts batch accepted and applied, so fan-out shows on the first run.

    Its records reach the application database, the billing database and the manual
    newsletter step: the SQL parts are done at once, the records wait on the System
    tasks page until someone confirms the newsletter deletion.
    """
    bucket = "inactive_accounts"
    if bucket not in datamap.policy.buckets:
        return {}
    last = session.scalars(
        select(DeletionRecord.deletion_batch_id)
        .where(DeletionRecord.bucket == bucket)
        .order_by(DeletionRecord.deletion_batch_id.desc())
        .limit(1)
    ).first()
    if last is None:
        return {}
    review_batch(
        session, last, "accept", reviewer=identify(datamap.policy, DEMO_REVIEWER), execute=True
    )
    result = apply_deletions(session, datamap, actor=actor, execute=True, bucket=bucket)
    return {"fan-out records waiting for a person": result.waiting}


def _seed_dsar_requests(session: Session, datamap: DataMap) -> int:
    """A few requests in every state, one of them overdue, for the DSAR and progress pages."""
    from compliance.dsar.decisions import review_dsar
    from compliance.dsar.processing import process_dsar_requests
    from compliance.dsar.requests import submit_dsar

    now = utcnow()
    policy = datamap.policy
    support = identify(policy, "support@example.com")

    def back(days: int) -> AbstractContextManager[None]:
        """The history as it happened: its audit events carry the day the request says
        (the timeline's first entry is the day it was logged), not the day of the set-up."""
        moment = now - timedelta(days=days)
        return clock.use_clock(lambda: moment)

    def submit(kind: str, subject: str, days_ago: int) -> str:
        with back(days_ago):
            request = submit_dsar(
                session, datamap.policy, datamap.engine, kind=kind, subject_id=subject,
                requested_by=support, identity_method="email_confirmation",
                identity_check="Demo: replied from the account's email", execute=True,
            )  # fmt: skip
        assert request.reference is not None
        return request.reference

    done = submit("access", "11", 12)
    with back(10):
        review_dsar(
            session,
            done,
            "approve",
            reviewer=identify(policy, DEMO_REVIEWER),
            four_eyes=policy.review.four_eyes,
            execute=True,
        )
    # Built, not sent: the demo shows a ready export for support to send (to the outbox).
    process_dsar_requests(
        session, datamap, actor="demo-setup", execute=True, now=now, deliver=False
    )
    submit("access", "12", 2)
    submit("erasure", "13", 5)
    submit("access", "14", 40)  # logged 40 days ago and never answered: overdue
    return 4
