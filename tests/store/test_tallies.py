"""Progress reads counts the database keeps as rows change: they must equal counting them.

The triggers restate the record state machine in SQL (migration 0009); these tests hold them
to ``RECORD_STATE_SQL``, and the task counts to the tasks, after every kind of write: the
jobs, an officer's review, purge, and an operator's own SQL, on both databases.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import and_, case, delete, func, insert, literal, or_, select, update
from sqlalchemy.orm import Session

from compliance.deletion.ledger import as_date, record_tallies, week_of
from compliance.reports.stats import bucket_progress, outcomes_per_week
from compliance.store.models import DeletionRecord, ErasureTask, utcnow
from compliance.store.queries import RECORD_STATE_SQL
from compliance.store.states import RecordState
from compliance.store.tallies import DeletionTally, TaskTally, compact_tallies, tally_sums
from tests.conftest import Deployment, ok, ok_stdout

BUCKET = "closed_accounts"
OFFICER = "dpo@example.com"
_R = DeletionRecord


def counted(s: Session) -> dict[tuple[str, RecordState, date], int]:
    """Every record counted by its state and the week of what last happened to it."""
    state = case(
        # APPLIED first, as record_state() reads it.
        (RECORD_STATE_SQL[RecordState.APPLIED], literal(RecordState.APPLIED.value)),
        *[
            (p, literal(st.value))
            for st, p in RECORD_STATE_SQL.items()
            if st != RecordState.APPLIED
        ],
    )
    changed = or_(RECORD_STATE_SQL[RecordState.EXCLUDED], RECORD_STATE_SQL[RecordState.FAILED])
    moment = case(
        (_R.deletion_applied_at.is_not(None), _R.deletion_applied_at),
        (changed, _R.updated_at),
        else_=_R.created_at,
    )
    week = week_of(s, moment)
    return {
        (bucket, RecordState(st), as_date(w)): n
        for bucket, st, w, n in s.execute(
            select(_R.bucket, state, week, func.count()).group_by(_R.bucket, state, week)
        )
    }


def tasks_counted(s: Session) -> dict[tuple[str, str], int]:
    t = ErasureTask
    query = select(t.system, t.status, func.count()).group_by(t.system, t.status)
    return {(system, status): n for system, status, n in s.execute(query)}


def assert_tallies_match(d: Deployment) -> None:
    with d.session() as s:
        assert record_tallies(s) == counted(s)
        assert tally_sums(s, TaskTally) == tasks_counted(s)


def test_tallies_equal_counting_the_records_after_every_kind_of_write(demo: Deployment) -> None:
    assert_tallies_match(demo)  # the demo's own records, counted by the migration or triggers
    ok(demo.run("create-deletion-records", "--bucket", BUCKET, "--execute"))
    out = ok_stdout(
        demo.run(
            "--json", "create-deletion-batches", "--bucket", BUCKET, "--max-batch-size", "10",
            "--execute",
        )
    )  # fmt: skip
    accepted, rejected = json.loads(out)["batch_ids"][:2]
    assert_tallies_match(demo)
    with demo.session() as s:
        excluded = s.scalars(select(_R.id).where(_R.deletion_batch_id == accepted)).first()
    ok(
        demo.run(
            "review-batch", str(accepted), "--accept", "--reviewer", OFFICER,
            "--exclude", f"{excluded}:kept for now", "--execute",
        )
    )  # fmt: skip
    ok(
        demo.run(
            "review-batch", str(rejected), "--reject", "--reviewer", OFFICER,
            "--reason", "wrong rule", "--execute",
        )
    )  # fmt: skip
    assert_tallies_match(demo)
    ok(demo.run("apply-deletions", "--bucket", BUCKET, "--execute"))
    assert_tallies_match(demo)
    with demo.session() as s:
        assert sum(tasks_counted(s).values()) >= 9  # a task per erased record and system

    # An operator's SQL, outside the library: a failure noted last week, a record moved to
    # another bucket, one deleted, one inserted by hand, a task marked failed.
    last_week = utcnow() - timedelta(days=7)
    with demo.session() as s:
        pending = list(
            s.scalars(
                select(_R.id).where(_R.accepted_for_deletion.is_(None)).order_by(_R.id).limit(3)
            )
        )
        s.execute(
            update(_R)
            .where(_R.id == pending[0])
            .values(accepted_for_deletion=True, deletion_error="refused", updated_at=last_week)
        )
        s.execute(update(_R).where(_R.id == pending[1]).values(bucket="moved_by_hand"))
        task = s.scalars(select(ErasureTask.id).order_by(ErasureTask.id).limit(1)).one()
        s.execute(update(ErasureTask).where(ErasureTask.id == task).values(status="failed"))
        profile = s.scalar(select(_R.compliance_profile_id).where(_R.id == pending[2]))
        s.execute(delete(_R).where(_R.id == pending[2]))
        s.execute(
            insert(_R).values(
                compliance_profile_id=profile, bucket="by_hand", deletion_scheduled_at=utcnow(),
                is_manually_reviewed=False, created_at=last_week, updated_at=last_week,
            )
        )  # fmt: skip
        s.commit()
    assert_tallies_match(demo)
    with demo.session() as s:
        tallies = record_tallies(s)
    this_monday = utcnow().date() - timedelta(days=utcnow().weekday())
    failed_week = this_monday - timedelta(days=7)
    assert tallies[(BUCKET, RecordState.FAILED, failed_week)] == 1
    assert tallies[("by_hand", RecordState.UNBATCHED, failed_week)] == 1
    assert tallies[("moved_by_hand", RecordState.AWAITING_REVIEW, this_monday)] == 1

    # Purge removes finished records: they leave the tallies as the aggregates take them in.
    with demo.session() as s:
        before = bucket_progress(s).set_index("bucket")
    ok(demo.run("purge-compliance-data", "--bucket", BUCKET, "--execute"))
    assert_tallies_match(demo)
    with demo.session() as s:
        after = bucket_progress(s).set_index("bucket")
    assert after.loc[BUCKET, "applied"] == before.loc[BUCKET, "applied"] == 9
    assert after.loc[BUCKET, "kept"] == before.loc[BUCKET, "kept"] == 11


def test_jobs_fold_the_deltas_and_the_figures_stay(demo: Deployment) -> None:
    ok(demo.run("create-deletion-records", "--bucket", BUCKET, "--execute"))
    with demo.session() as s:
        # Many small writes, as reviews make: each leaves its own delta rows.
        ids = list(s.scalars(select(_R.id).where(_R.bucket == BUCKET).order_by(_R.id)))
        for rid in ids[:6]:
            s.execute(update(_R).where(_R.id == rid).values(accepted_for_deletion=False))
            s.commit()
        rows_before = s.scalar(select(func.count()).select_from(DeletionTally))
        figures = record_tallies(s)
    with demo.session() as s:
        removed = compact_tallies(s)
    with demo.session() as s:
        rows_after = s.scalar(select(func.count()).select_from(DeletionTally))
        assert record_tallies(s) == figures == counted(s)
        # One row per bucket, state and week remains, none of them zero.
        keys = s.execute(
            select(DeletionTally.bucket, DeletionTally.state, DeletionTally.week)
        ).all()
        assert len(keys) == len(set(keys)) == len(figures)
        task_keys = s.execute(select(TaskTally.system, TaskTally.status)).all()
        assert len(task_keys) == len(set(task_keys))
        assert s.scalar(select(func.count()).where(DeletionTally.records == 0)) == 0
    assert rows_before is not None and rows_after is not None
    assert removed == rows_before - rows_after > 0

    # A job's end folds them too.
    with demo.session() as s:
        s.execute(update(_R).where(_R.id == ids[6]).values(accepted_for_deletion=False))
        s.commit()
    ok(demo.run("create-deletion-batches", "--bucket", BUCKET, "--execute"))
    with demo.session() as s:
        keys = s.execute(
            select(DeletionTally.bucket, DeletionTally.state, DeletionTally.week)
        ).all()
        assert len(keys) == len(set(keys))
        assert record_tallies(s) == counted(s)


def test_weekly_outcomes_count_whole_weeks_from_the_tallies(demo: Deployment) -> None:
    ok(demo.run("create-deletion-records", "--bucket", BUCKET, "--execute"))
    now = utcnow()
    long_ago = now - timedelta(weeks=20)
    with demo.session() as s:
        first, second = s.scalars(
            select(_R.id).where(_R.bucket == BUCKET).order_by(_R.id).limit(2)
        ).all()
        # Found 20 weeks ago: outside the 12-week window. Failed early on the Monday of the
        # week 12 weeks back: inside, since the window starts on that Monday.
        start = (now - timedelta(weeks=12)).date()
        monday = datetime.combine(start - timedelta(days=start.weekday()), time(0, 30), UTC)
        s.execute(update(_R).where(_R.id == first).values(created_at=long_ago))
        s.execute(
            update(_R)
            .where(_R.id == second)
            .values(
                accepted_for_deletion=True,
                deletion_error="refused",
                updated_at=monday,
            )
        )
        s.commit()
        weekly = outcomes_per_week(s, weeks=12, now=now)
        pending_live = s.scalar(
            select(func.count()).where(
                _R.bucket == BUCKET,
                and_(_R.deletion_applied_at.is_(None), _R.accepted_for_deletion.is_(None)),
            )
        )
    mine = weekly[weekly["bucket"] == BUCKET]
    assert mine["failed"].sum() == 1
    assert mine["pending"].sum() == (pending_live or 0) - 1  # all but the one found long ago
    assert min(mine["week"]) == monday.date()
