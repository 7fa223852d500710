"""Lifecycles: the moves each allows, the database refusing strangers, one state per record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import IntegrityError

from compliance.dsar.requests import next_actions
from compliance.errors import Conflict
from compliance.store.engines import alembic_config, make_engine
from compliance.store.models import DeletionBatch, DeletionRecord, DsarRequest, JobRun
from compliance.store.queries import RECORD_STATE_SQL, record_state
from compliance.store.states import (
    BatchStatus,
    DsarStatus,
    JobRunStatus,
    LedgerDecision,
    NoticeStatus,
    RecordState,
    TaskStatus,
    can_move,
    is_final,
    move,
)
from tests.conftest import Backend, Deployment

BUCKET = "closed_accounts"
NOW = datetime(2026, 3, 1, tzinfo=UTC)


def test_a_batch_is_decided_once_and_a_dsar_retry_only_follows_a_failure() -> None:
    assert can_move(BatchStatus.PENDING, BatchStatus.ACCEPTED)
    assert not can_move(BatchStatus.ACCEPTED, BatchStatus.REJECTED)
    assert is_final(BatchStatus.REJECTED)
    assert can_move(DsarStatus.FAILED, DsarStatus.APPROVED)
    assert not can_move(DsarStatus.COMPLETED, DsarStatus.APPROVED)
    assert not can_move(RecordState.APPLIED, RecordState.PENDING_APPLY)
    assert can_move(RecordState.FAILED, RecordState.APPLIED)  # the next apply run retries
    assert is_final(JobRunStatus.CRASHED) and not is_final(JobRunStatus.RUNNING)


def test_a_finished_task_stays_finished_and_a_failed_notice_may_be_sent_again() -> None:
    assert can_move(TaskStatus.PENDING, TaskStatus.SENT)
    assert can_move(TaskStatus.FAILED, TaskStatus.PENDING)  # an officer's retry
    assert is_final(TaskStatus.DONE) and is_final(TaskStatus.SKIPPED)
    assert not can_move(TaskStatus.DONE, TaskStatus.FAILED)
    assert can_move(NoticeStatus.FAILED, NoticeStatus.SENT)
    assert is_final(NoticeStatus.SENT)
    assert all(is_final(d) for d in LedgerDecision)


def _request(status: DsarStatus, kind: str = "access", extended: int = 0) -> DsarRequest:
    """A GDPR request: due in a month, at most three months once extended by two."""
    return DsarRequest(
        reference="DSAR-2026-000001",
        kind=kind,
        subject_id="1",
        status=status,
        requested_by="s@example.com",
        requested_at=NOW,
        due_at=NOW + timedelta(days=30),
        extended_due_at=NOW + timedelta(days=90) if extended == 2 else None,
        latest_due_at=NOW + timedelta(days=90),
        extension_months=extended,
    )


def test_what_an_officer_may_do_next_follows_the_request_state() -> None:
    pending = next_actions(_request(DsarStatus.PENDING))
    assert (pending.can_review, pending.can_extend, pending.can_retry) == (True, True, False)
    failed = next_actions(_request(DsarStatus.FAILED))
    assert (failed.can_review, failed.can_retry) == (False, True)
    assert next_actions(_request(DsarStatus.COMPLETED)).can_download
    assert not next_actions(_request(DsarStatus.COMPLETED, kind="erasure")).can_download
    done = next_actions(_request(DsarStatus.COMPLETED))
    assert not (done.can_extend or done.can_review or done.can_retry)
    assert not next_actions(_request(DsarStatus.APPROVED, extended=2)).can_extend


def test_the_database_refuses_a_status_no_lifecycle_knows(deployment: Deployment) -> None:
    now = datetime.now(UTC)
    rows = [
        DeletionBatch(bucket=BUCKET, reviewed_status="maybe"),
        JobRun(job="apply-deletions", dry_run=False, status="half-done"),
        DsarRequest(
            reference="DSAR-2026-000009",
            kind="complaint",
            subject_id="1",
            status=DsarStatus.PENDING,
            requested_by="s@example.com",
            due_at=now,
        ),
    ]
    for row in rows:
        with deployment.session() as s:
            s.add(row)
            with pytest.raises(IntegrityError):
                s.commit()
    with deployment.session() as s:
        s.add(DeletionBatch(bucket=BUCKET, reviewed_status=BatchStatus.PENDING))
        s.commit()
        assert s.scalar(select(DeletionBatch.reviewed_status)) == "pending"


def test_each_record_is_in_exactly_one_state_and_python_agrees_with_sql(demo: Deployment) -> None:
    assert demo.run("create-deletion-records", "--bucket", BUCKET, "--execute").exit_code == 0
    with demo.session() as s:  # some records stay unbatched
        first_ids = list(s.scalars(select(DeletionRecord.id).order_by(DeletionRecord.id)))
        s.execute(delete(DeletionRecord).where(DeletionRecord.id.not_in(first_ids[:30])))
        s.commit()
    demo.run("create-deletion-batches", "--bucket", BUCKET, "--max-batch-size", "5", "--execute")
    with demo.session() as s:
        a, r, later, *_ = s.scalars(select(DeletionBatch.id).order_by(DeletionBatch.id))
    ok = demo.run("review-batch", str(a), "--accept", "--reviewer", "dpo@example.com", "--execute")
    assert ok.exit_code == 0, ok.output
    no = demo.run(
        "review-batch", str(r), "--reject", "--reviewer", "dpo@example.com",
        "--reason", "too broad", "--execute",
    )  # fmt: skip
    assert no.exit_code == 0, no.output
    demo.run("apply-deletions", "--bucket", BUCKET, "--execute")
    late = demo.run(
        "review-batch", str(later), "--accept", "--reviewer", "dpo@example.com", "--execute"
    )
    assert late.exit_code == 0, late.output  # accepted after the run: pending apply
    first_applied = select(func.min(DeletionRecord.id)).where(
        DeletionRecord.deletion_applied_at.is_not(None)
    )
    with demo.session() as s:  # and one accepted record whose last apply failed
        s.execute(
            update(DeletionRecord)
            .where(DeletionRecord.id == s.scalar(first_applied))
            .values(deletion_applied_at=None, deletion_error="table locked")
        )
        s.commit()
        demo.run("create-deletion-records", "--bucket", BUCKET, "--execute")
        seen: dict[RecordState, int] = {}
        for record in s.scalars(select(DeletionRecord)):
            matches = [
                state
                for state, condition in RECORD_STATE_SQL.items()
                if s.scalar(select(condition).where(DeletionRecord.id == record.id))
            ]
            assert len(matches) == 1, (record.id, matches)
            assert matches[0] == record_state(
                batch_id=record.deletion_batch_id,
                accepted=record.accepted_for_deletion,
                applied_at=record.deletion_applied_at,
                error=record.deletion_error,
            )
            seen[matches[0]] = seen.get(matches[0], 0) + 1
    assert set(seen) == set(RecordState), seen


def test_adding_the_state_checks_keeps_every_record_in_its_batch(backend: Backend) -> None:
    """On SQLite the migration rebuilds tables; foreign-key actions must not fire on the way."""
    engine = make_engine(backend.url("compliance"))
    config = alembic_config(engine)
    before = ScriptDirectory.from_config(config).get_revision("0003_states").down_revision
    command.upgrade(config, str(before))
    stamp = "2026-01-01 00:00:00"
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO compliance_profiles (id, subject_id, created_at, updated_at) "
                "VALUES (1, '7', :t, :t)"
            ),
            {"t": stamp},
        )
        conn.execute(
            text(
                "INSERT INTO deletion_batches (id, bucket, reviewed_status, created_at, "
                "updated_at) VALUES (1, :b, 'pending', :t, :t)"
            ),
            {"b": BUCKET, "t": stamp},
        )
        conn.execute(
            text(
                "INSERT INTO deletion_records (id, compliance_profile_id, bucket, "
                "deletion_batch_id, deletion_scheduled_at, is_manually_reviewed, created_at, "
                "updated_at) VALUES (1, 1, :b, 1, :t, false, :t, :t)"
            ),
            {"b": BUCKET, "t": stamp},
        )
    command.upgrade(config, "head")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT deletion_batch_id FROM deletion_records")).all() == [(1,)]
        if engine.dialect.name == "sqlite":
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    engine.dispose()


def test_a_status_changes_only_by_a_move_its_lifecycle_lists() -> None:
    request = DsarRequest(reference="DSAR-2026-000001", status=DsarStatus.COMPLETED)
    with pytest.raises(Conflict, match="DSAR-2026-000001 is completed; it cannot become approved"):
        move(request, DsarStatus.APPROVED)
    assert request.status == DsarStatus.COMPLETED
    request.status = DsarStatus.PROCESSING
    move(request, DsarStatus.APPROVED)  # back in the queue after a failed attempt
    assert request.status == DsarStatus.APPROVED
