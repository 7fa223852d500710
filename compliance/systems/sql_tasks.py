"""SQL tasks: a deletion record's or request's part in another SQL database, carried out by
the run that erases (``apply-deletions``) or exports the subject, one engine per system."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Select,
    String,
    Text,
    and_,
    bindparam,
    case,
    func,
    literal,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from compliance.errors import stored_error
from compliance.policy.systems import SystemKind
from compliance.store.models import ErasureTask
from compliance.store.sql import among_ids, dialect_insert
from compliance.store.states import TaskStatus
from compliance.systems.tasks import FINISHED, new_key, new_keys


def sql_work(session: Session, system: str, record_ids: Sequence[int]) -> list[int]:
    """The records whose task in ``system`` is still to do (or not yet created).

    Only reads, so the erasure itself can run before this session writes anything: on
    SQLite with one file for both databases a write here would block the erasure.
    """
    if not record_ids:
        return []
    # The status is checked here, not in SQL: with statistics taken while the task table
    # was small, PostgreSQL intersected the chunk's tasks with every finished task in the
    # status index, a read that grew with each chunk ever applied (issue 13).
    tasks = session.execute(
        select(ErasureTask.deletion_record_id, ErasureTask.status).where(
            among_ids(ErasureTask.deletion_record_id, record_ids), ErasureTask.system == system
        )
    )
    finished = {rid for rid, status in tasks if status in FINISHED}
    return [rid for rid in record_ids if rid not in finished]


def finish_sql_tasks(
    session: Session,
    system: str,
    done: Sequence[int],
    failed: Mapping[int, str],
    now: datetime,
) -> None:
    """Write the records' SQL tasks in ``system`` done, or failed with their error.

    One upsert for the chunk: a task the run has not created yet is inserted already
    finished (or failed) rather than inserted pending and updated, which would write every
    row twice. A task finished meanwhile stays as it is; a failed one is retried next run.
    """
    if not done and not failed:
        return
    table = ErasureTask.__table__
    insert = dialect_insert(session)(table)
    if session.get_bind().dialect.name == "postgresql":
        # The chunk as a few array parameters, not a dozen parameters per row.
        insert = insert.from_select(*_sql_task_rows_pg(system, done, failed, now))
        rows: list[dict[str, Any]] | None = None
    else:
        rows = [
            _sql_task_row(system, rid, now, TaskStatus.DONE, None, done_at=now) for rid in done
        ] + [
            _sql_task_row(system, rid, now, TaskStatus.FAILED, stored_error(message))
            for rid, message in failed.items()
        ]
    upsert = insert.on_conflict_do_update(
        index_elements=["deletion_record_id", "system"],
        set_={
            "status": insert.excluded.status,
            "done_at": insert.excluded.done_at,
            "last_error": insert.excluded.last_error,
            "attempts": table.c.attempts + 1,
            "updated_at": insert.excluded.updated_at,
        },
        # Plain comparisons: an IN list would expand, which executemany refuses.
        where=and_(*(table.c.status != status for status in FINISHED)),
    )
    if rows is None:  # PostgreSQL: one INSERT … SELECT, nothing to send back
        session.execute(upsert)
    else:
        # With RETURNING, SQLAlchemy sends the rows as multi-row pages, not one by one.
        session.execute(upsert.returning(table.c.id), rows).all()


def _sql_task_fixed(system: str, now: datetime) -> dict[str, Any]:
    """What every SQL task ``finish_sql_tasks`` writes in one chunk has in common."""
    return {
        "dsar_request_id": None,
        "system": system,
        "system_kind": SystemKind.SQL,
        "action": "erasure",
        "attempts": 1,
        "subject": None,
        "note": None,
        "created_at": now,
        "updated_at": now,
    }


def _sql_task_rows_pg(
    system: str, done: Sequence[int], failed: Mapping[int, str], now: datetime
) -> tuple[list[str], Select[Any]]:
    """The rows ``_sql_task_row`` makes, as one SELECT over unnested arrays (PostgreSQL)."""
    table = ErasureTask.__table__
    ids = [*done, *failed]
    statuses = [str(TaskStatus.DONE)] * len(done) + [str(TaskStatus.FAILED)] * len(failed)
    errors = [None] * len(done) + [stored_error(message) for message in failed.values()]
    given = (
        func.unnest(
            bindparam("task_ids", ids, type_=ARRAY(BigInteger)),
            bindparam("task_statuses", statuses, type_=ARRAY(String)),
            bindparam("task_errors", errors, type_=ARRAY(Text)),
            bindparam("task_keys", new_keys(len(ids)), type_=ARRAY(String)),
        )
        .table_valued("record_id", "status", "error", "key")
        .render_derived()
    )
    # Typed as their columns: the JSON column's None is JSON null, as in the executemany rows.
    columns: dict[str, Any] = {
        name: literal(value, table.c[name].type)
        for name, value in _sql_task_fixed(system, now).items()
    }
    columns |= {
        "deletion_record_id": given.c.record_id,
        "status": given.c.status,
        "idempotency_key": given.c.key,
        "done_at": case(
            (given.c.status == str(TaskStatus.DONE), literal(now, table.c.done_at.type))
        ),
        "last_error": given.c.error,
    }
    return list(columns), select(*columns.values())


def _sql_task_row(
    system: str,
    record_id: int,
    now: datetime,
    status: TaskStatus,
    error: str | None,
    *,
    done_at: datetime | None = None,
) -> dict[str, Any]:
    """A record's SQL task as ``finish_sql_tasks`` leaves it: tried once, done or failed."""
    return {
        **_sql_task_fixed(system, now),
        "deletion_record_id": record_id,
        "status": status,
        "idempotency_key": new_key(),
        "done_at": done_at,
        "last_error": error,
    }
