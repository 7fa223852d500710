"""Deletion batches: open records grouped for a compliance officer to accept or reject."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import (
    CTE,
    ColumnElement,
    Integer,
    Table,
    case,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.orm import Session

from compliance.audit.chain import record_events
from compliance.deletion.records import MAX_CHUNK_SIZE
from compliance.errors import InvalidInput
from compliance.logs import Progress
from compliance.policy.model import Policy
from compliance.store.engines import analyze
from compliance.store.models import (
    DeletionBatch,
    DeletionRecord,
    utcnow,
)
from compliance.store.queries import record_in, record_open
from compliance.store.states import BatchStatus, RecordState
from compliance.store.types import UTCDateTime

DEFAULT_MAX_BATCH_SIZE = 200
# Records batched per commit: a killed run loses at most this many, and the rerun batches them.
# Fewer, larger commits cost less; SQLite's IN list caps its group at MAX_CHUNK_SIZE ids.
RECORDS_PER_COMMIT = 50_000


@dataclass(frozen=True)
class CreateBatchesResult:
    bucket: str
    batches: int
    records: int
    batch_ids: tuple[int, ...]
    elapsed_s: float
    executed: bool


def _unbatched(bucket: str) -> tuple[ColumnElement[bool], ...]:
    return (DeletionRecord.bucket == bucket, record_open, record_in(RecordState.UNBATCHED))


@dataclass(frozen=True)
class BatchingPlan:
    """What a batching run will do, fixed before it starts: the dry run reports it as is."""

    bucket: str
    max_batch_size: int
    pending: int | None  # counted for the dry run only: the run itself reads as it goes

    @property
    def batches(self) -> int:
        return -(-(self.pending or 0) // self.max_batch_size)


def plan_deletion_batches(
    session: Session, policy: Policy, bucket_name: str, *, max_batch_size: int, count: bool
) -> BatchingPlan:
    """Check the bucket and size once, so the dry run and the run refuse the same input."""
    bucket = policy.bucket(bucket_name)
    if max_batch_size < 1:
        raise InvalidInput(
            f"{{field}} must be at least 1, got {max_batch_size}", field="max_batch_size"
        )
    pending = None
    if count:
        pending = session.scalar(select(func.count()).where(*_unbatched(bucket.name))) or 0
    return BatchingPlan(bucket.name, max_batch_size, pending)


def create_deletion_batches(
    session: Session,
    policy: Policy,
    bucket_name: str,
    *,
    actor: str,
    execute: bool,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
) -> CreateBatchesResult:
    """Group the bucket's unbatched open records, oldest first; each batch commits on its own."""
    plan = plan_deletion_batches(
        session, policy, bucket_name, max_batch_size=max_batch_size, count=not execute
    )
    if not execute:
        return CreateBatchesResult(plan.bucket, plan.batches, plan.pending or 0, (), 0.0, False)
    return carry_out_batching(session, plan, actor=actor)


def carry_out_batching(session: Session, plan: BatchingPlan, *, actor: str) -> CreateBatchesResult:
    """Batch group after group, each committed, so a killed run keeps what it finished."""
    progress = Progress("deletion_batches.progress", bucket=plan.bucket)
    analyze(session, DeletionRecord)
    created: list[int] = []
    records = 0
    last_id = 0
    postgresql = session.get_bind().dialect.name == "postgresql"
    cap = RECORDS_PER_COMMIT if postgresql else MAX_CHUNK_SIZE
    group = plan.max_batch_size * max(1, cap // plan.max_batch_size)
    next_group = _batch_group_in_database if postgresql else _batch_group_by_ids
    while made := next_group(session, plan, last_id, group, actor=actor):
        session.commit()
        if not created:
            # Statistics taken while the table was (nearly) empty made PostgreSQL check each
            # record's foreign key by reading every batch: quadratic over a large first run.
            analyze(session, DeletionBatch)
        created += list(made)
        done = sum(n for n, _ in made.values())
        records += done
        last_id = max(last for _, last in made.values())
        progress.advance(done, batches=len(created))
    return CreateBatchesResult(
        plan.bucket, len(created), records, tuple(created), round(progress.elapsed, 3), True
    )


def _batch_group_in_database(
    session: Session, plan: BatchingPlan, after_id: int, group: int, *, actor: str
) -> dict[int, tuple[int, int]]:
    """PostgreSQL: the next ``group`` unbatched records, oldest first, batched in one statement.

    The database picks the records, makes one batch per ``max_batch_size`` of them and
    assigns each record its batch: no record id travels to Python and back, the way raw SQL
    would do it. Returns each new batch's (records, highest record id), in batch id order;
    the batches and their audit events commit together, as with the other way.
    """
    r = cast(Table, DeletionRecord.__table__)
    now = utcnow()
    stamp = literal(now, UTCDateTime())
    picked = _picked_records(r, plan, after_id, group)
    numbered = _numbered_batches(plan, picked, stamp)
    assigned = (
        update(r)
        .where(r.c.id == picked.c.id, picked.c.slot == numbered.c.slot)
        # Said again for the planner: without it PostgreSQL merge-joined the picked records
        # against the primary key from its first row, so each group read every record
        # batched before it (issue 13: 0.9 s of the last group's 2.9 s at 1M).
        .where(r.c.id > after_id, r.c.deletion_batch_id.is_(None))
        .values(deletion_batch_id=numbered.c.id, updated_at=stamp)
        .returning(r.c.id, r.c.deletion_batch_id)
        .cte("assigned")
    )
    rows = session.execute(
        select(assigned.c.deletion_batch_id, func.count(), func.max(assigned.c.id))
        .group_by(assigned.c.deletion_batch_id)
        .order_by(assigned.c.deletion_batch_id)
    ).all()
    made_ids = {batch_id: (n, last) for batch_id, n, last in rows}
    record_events(
        session,
        actor=actor,
        action="deletion_batch.created",
        target_type="deletion_batch",
        events=[(b, {"bucket": plan.bucket, "records": n}) for b, (n, _) in made_ids.items()],
    )
    return made_ids


def _picked_records(r: Table, plan: BatchingPlan, after_id: int, group: int) -> CTE:
    """The group's unbatched records, oldest first, each given the slot of the batch it joins."""
    return (
        select(
            r.c.id,
            (
                (func.row_number(type_=Integer).over(order_by=r.c.id) - 1) // plan.max_batch_size
            ).label("slot"),
        )
        .where(*_unbatched(plan.bucket), r.c.id > after_id)
        .order_by(r.c.id)
        .limit(group)
        .cte("picked")
    )


def _numbered_batches(plan: BatchingPlan, picked: CTE, stamp: ColumnElement[datetime]) -> CTE:
    """One new pending batch per slot the picked records fill, numbered to match those slots."""
    slots = func.generate_series(0, select(func.max(picked.c.slot)).scalar_subquery())
    made = (
        insert(DeletionBatch)
        .from_select(
            ["bucket", "reviewed_status", "created_at", "updated_at"],
            select(
                literal(plan.bucket), literal(BatchStatus.PENDING.value), stamp, stamp
            ).select_from(slots),
        )
        .returning(DeletionBatch.id)
        .cte("made")
    )
    return select(
        made.c.id, (func.row_number(type_=Integer).over(order_by=made.c.id) - 1).label("slot")
    ).cte("numbered")


def _batch_group_by_ids(
    session: Session, plan: BatchingPlan, after_id: int, group: int, *, actor: str
) -> dict[int, tuple[int, int]]:
    """SQLite: one SELECT of the group's ids, one INSERT, one UPDATE, one audit INSERT.

    Returns each new batch's (records, highest record id), in batch id order.
    """
    ids = list(
        session.scalars(
            select(DeletionRecord.id)
            .where(*_unbatched(plan.bucket), DeletionRecord.id > after_id)
            .order_by(DeletionRecord.id)
            .limit(group)
        )
    )
    if not ids:
        return {}
    now = utcnow()
    size = plan.max_batch_size
    slices = [ids[i : i + size] for i in range(0, len(ids), size)]
    batch_ids = list(
        session.scalars(
            insert(DeletionBatch).returning(DeletionBatch.id, sort_by_parameter_order=True),
            [
                {"bucket": plan.bucket, "reviewed_status": BatchStatus.PENDING,
                 "created_at": now, "updated_at": now}
                for _ in slices
            ],
        )
    )  # fmt: skip
    _assign(session, cast(Table, DeletionRecord.__table__), slices, batch_ids, now)
    record_events(
        session,
        actor=actor,
        action="deletion_batch.created",
        target_type="deletion_batch",
        events=[
            (batch_id, {"bucket": plan.bucket, "records": len(part)})
            for part, batch_id in zip(slices, batch_ids, strict=True)
        ],
    )
    return {
        batch_id: (len(part), part[-1]) for part, batch_id in zip(slices, batch_ids, strict=True)
    }


def _assign(
    session: Session,
    records_table: Table,
    slices: list[list[int]],
    batch_ids: list[int],
    now: datetime,
) -> None:
    """One UPDATE for the group, by primary key, each record to its slice's batch."""
    ids = [rid for part in slices for rid in part]
    session.connection().execute(
        update(records_table)
        .where(records_table.c.id.in_(ids), records_table.c.deletion_batch_id.is_(None))
        .values(
            deletion_batch_id=case(
                *[
                    (records_table.c.id <= part[-1], batch_id)
                    for part, batch_id in zip(slices, batch_ids, strict=True)
                ]
            ),
            updated_at=now,
        )
    )
