"""Tasks: one per system for every deletion record and DSAR request, worked through by the jobs.

A record is applied, and an access request completed, only when each of its tasks is done
(or skipped, for a system that holds only retained data). This module is what every kind
of task shares: which tasks a record or request gets, how a task finishes or fails, when
its owner is settled, and the reads. Each kind's work has a module of its own: SQL tasks
(``sql_tasks``, carried out by ``apply-deletions`` and ``process-dsar-requests``), webhook
tasks (``webhook_tasks``: signed, retried with backoff, answered by polling or callback)
and manual tasks (``manual_tasks``: a person confirms them).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ScalarSelect,
    Subquery,
    case,
    func,
    literal,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from compliance.audit.chain import record_event
from compliance.errors import InvalidInput, stored_error
from compliance.policy.model import Bucket, Policy
from compliance.policy.systems import SystemKind
from compliance.storage import Area, ExportStore
from compliance.store.models import DeletionRecord, DsarRequest, ErasureTask
from compliance.store.queries import first_or_not_found, record_open
from compliance.store.sql import among_ids, dialect_insert
from compliance.store.states import DsarKind, TaskStatus, move

# A finished task never moves again (is_final); the rest are still to do.
FINISHED = (TaskStatus.DONE, TaskStatus.SKIPPED)
OPEN = (TaskStatus.PENDING, TaskStatus.SENT, TaskStatus.FAILED)
BACKOFF_BASE = timedelta(seconds=60)
MAX_BACKOFF = timedelta(hours=6)
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def backoff(attempts: int) -> timedelta:
    """1, 2, 4, 8 … minutes after the 1st, 2nd, 3rd … failed attempt, at most six hours."""
    return min(BACKOFF_BASE * (2 ** max(attempts - 1, 0)), MAX_BACKOFF)


def new_keys(n: int) -> list[str]:
    """``n`` idempotency keys of 128 random bits (32 hex digits), drawn at once: a chunk
    needs thousands."""
    pool = os.urandom(16 * n).hex()
    return [pool[i : i + 32] for i in range(0, 32 * n, 32)]


def new_key() -> str:
    return new_keys(1)[0]


# ---------------------------------------------------------------- which tasks a thing gets


@dataclass(frozen=True)
class TaskSpec:
    system: str
    kind: str
    status: TaskStatus  # pending, or skipped for a system holding only retained data


def record_task_specs(policy: Policy, bucket: Bucket) -> list[TaskSpec]:
    """The systems an accepted deletion in ``bucket`` reaches, in order: SQL, then the rest."""
    specs = [
        TaskSpec(name, policy.systems[name].kind, TaskStatus.PENDING)
        for name in policy.bucket_systems(bucket)
    ]
    if policy.is_erasure_bucket(bucket.name):
        reached = {s.system for s in specs}
        specs += [
            TaskSpec(name, SystemKind.SQL, TaskStatus.SKIPPED)
            for name in policy.retained_only_systems()
            if name not in reached
        ]
    return specs


def access_task_specs(policy: Policy) -> list[TaskSpec]:
    """An access request reads every SQL system with mapped tables and the DSAR systems."""
    held = {t.system for t in policy.tables.values()}
    sql = [n for n, s in policy.systems.items() if s.is_sql and n in held]
    return [TaskSpec(n, SystemKind.SQL, TaskStatus.PENDING) for n in sql] + [
        TaskSpec(n, policy.systems[n].kind, TaskStatus.PENDING) for n in policy.dsar_systems
    ]


def ensure_record_tasks(
    session: Session,
    policy: Policy,
    bucket: Bucket,
    records: Sequence[tuple[int, str]],
    *,
    subjects: Mapping[str, Mapping[str, Any]],
    now: datetime,
    skip_systems: Container[str] = (),
) -> int:
    """Create the tasks these records lack (set-based, concurrent-safe); return how many.

    ``skip_systems`` are those whose tasks the caller has just written, finished, with
    ``finish_sql_tasks``: inserting them again would only find them there.
    """
    specs = [s for s in record_task_specs(policy, bucket) if s.system not in skip_systems]
    rows = [
        _task_row(spec, "erasure", now, subjects.get(subject), deletion_record_id=rid)
        for rid, subject in records
        for spec in specs
    ]
    return _insert_tasks(session, rows, "deletion_record_id")


def ensure_request_tasks(
    session: Session,
    policy: Policy,
    request: DsarRequest,
    *,
    subject: Mapping[str, Any] | None,
    now: datetime,
    specs: Sequence[TaskSpec] | None = None,
    action: str | None = None,
) -> int:
    """Create the request's tasks it lacks: ``specs``, by default an access request's; each
    does the request's kind, or ``action`` (a restriction's end)."""
    specs = access_task_specs(policy) if specs is None else specs
    rows = [
        _task_row(spec, action or request.kind, now, subject, dsar_request_id=request.id)
        for spec in specs
    ]
    return _insert_tasks(session, rows, "dsar_request_id")


def _task_row(
    spec: TaskSpec,
    action: str,
    now: datetime,
    subject: Mapping[str, Any] | None,
    **owner: int,
) -> dict[str, Any]:
    needs_subject = spec.kind != SystemKind.SQL and spec.status == TaskStatus.PENDING
    return {
        "deletion_record_id": None,
        "dsar_request_id": None,
        **owner,
        "system": spec.system,
        "system_kind": spec.kind,
        "action": action,
        "status": spec.status,
        "attempts": 0,
        "idempotency_key": new_key(),
        # Only what a webhook or a person needs to find the subject, and only until done.
        "subject": dict(subject) if subject and needs_subject else None,
        "done_at": now if spec.status == TaskStatus.SKIPPED else None,
        "note": "holds only data kept under a legal obligation"
        if spec.status == TaskStatus.SKIPPED
        else None,
        "created_at": now,
        "updated_at": now,
    }


def _insert_tasks(session: Session, rows: list[dict[str, Any]], owner: str) -> int:
    if not rows:
        return 0
    table = ErasureTask.__table__
    result = session.execute(
        dialect_insert(session)(table)
        # A request's tasks are one per system and action (uq_erasure_tasks_request).
        .on_conflict_do_nothing(
            index_elements=[owner, "system", "action"]
            if owner == "dsar_request_id"
            else [owner, "system"]
        )
        .returning(table.c.id),
        rows,
    )
    return len(result.all())


# ---------------------------------------------------------------- settling owners


def settle_records(
    session: Session, record_ids: Sequence[int], now: datetime, *, plan_hash: str | None = None
) -> tuple[list[int], dict[int, str]]:
    """Apply the records whose every task is finished; note the errors of failed ones.

    Returns the ids applied now and, per record with a failed task, the first error
    ("system: message", as stored: at most 1000 characters). A record with no tasks at all
    is never applied here. One UPDATE settles the whole chunk, both outcomes at once (and,
    given ``plan_hash``, notes it as the plan the applied ones went under): it runs for
    every chunk apply commits.
    """
    if not record_ids:
        return [], {}
    tally = _chunk_tally(record_ids)
    complete = tally.c.finished == tally.c.tasks
    # Only worked out for a record that failed: the first failed task, by system.
    first_error = _first_failed_error()
    applied_at = DeletionRecord.__table__.c.deletion_applied_at
    under_plan: dict[str, Any] = {}
    if plan_hash is not None:
        under_plan = {
            "applied_plan_hash": case(
                (complete, plan_hash), else_=DeletionRecord.applied_plan_hash
            ),
            "blocked_plan_hash": case((complete, null()), else_=DeletionRecord.blocked_plan_hash),
        }
    settled = session.execute(
        update(DeletionRecord)
        .where(
            DeletionRecord.id == tally.c.record_id,
            record_open,
            or_(complete, tally.c.failed > 0),
        )
        .values(
            deletion_applied_at=case((complete, literal(now, applied_at.type)), else_=null()),
            deletion_error=case((complete, null()), else_=func.substr(first_error, 1, 1000)),
            updated_at=now,
            **under_plan,
        )
        # Seen as updated: no error on an applied record, the stored one on a failed record.
        .returning(DeletionRecord.id, DeletionRecord.deletion_error)
    ).all()
    # Plain tuples: sorting the result's rows compared them through SQLAlchemy's Row.
    outcomes = sorted((rid, error) for rid, error in settled)
    applied = [rid for rid, error in outcomes if error is None]
    return applied, {rid: error for rid, error in outcomes if error is not None}


def _chunk_tally(record_ids: Sequence[int]) -> Subquery:
    """Counts each record's tasks (all, finished, failed) from the chunk's tasks alone."""
    # The chunk's own tasks, counted per record: correlated EXISTS clauses here were run by
    # PostgreSQL as hashed subplans over the whole task table, a cost that grew with every
    # chunk ever applied (issue 13); this reads only the chunk's tasks, through their index.
    return (
        select(
            ErasureTask.deletion_record_id.label("record_id"),
            func.count().label("tasks"),
            func.sum(case((ErasureTask.status.in_(FINISHED), 1), else_=0)).label("finished"),
            func.sum(case((ErasureTask.status == TaskStatus.FAILED, 1), else_=0)).label("failed"),
        )
        .where(among_ids(ErasureTask.deletion_record_id, record_ids))
        .group_by(ErasureTask.deletion_record_id)
        .subquery("tally")
    )


def _first_failed_error() -> ScalarSelect[str]:
    """Decides which error a failed record keeps: its first failed task's, by system."""
    return (
        select(ErasureTask.system + ": " + func.coalesce(ErasureTask.last_error, "failed"))
        .where(
            ErasureTask.deletion_record_id == DeletionRecord.id,
            ErasureTask.status == TaskStatus.FAILED,
        )
        .order_by(ErasureTask.system)
        .limit(1)
        .scalar_subquery()
    )


def forecast_settle(
    session: Session,
    record_ids: Sequence[int],
    *,
    finishing: Container[str],
    specs: Sequence[TaskSpec],
) -> tuple[list[int], dict[int, str]]:
    """What ``settle_records`` would return once the SQL systems ``finishing`` are done.

    The dry run's reading of apply: the records' tasks as they stand, those the records lack
    created as ``specs`` say. Only reads. A webhook task not answered yet counts as waiting,
    although the real run may send it and get "done" back at once.
    """
    if not record_ids:
        return [], {}
    tasks: dict[int, dict[str, tuple[str, str | None]]] = {
        rid: {spec.system: (spec.status, None) for spec in specs} for rid in record_ids
    }
    stored = session.execute(
        select(
            ErasureTask.deletion_record_id,
            ErasureTask.system,
            ErasureTask.status,
            ErasureTask.last_error,
        ).where(among_ids(ErasureTask.deletion_record_id, record_ids))
    )
    for rid, system, status, error in stored:
        if rid is not None:  # typed optional: a request's tasks have no record
            tasks[rid][system] = (status, error)
    applied: list[int] = []
    errors: dict[int, str] = {}
    for rid in record_ids:
        outcome = {
            system: TaskStatus.DONE if system in finishing else TaskStatus(status)
            for system, (status, _) in tasks[rid].items()
        }
        failed = sorted(s for s, status in outcome.items() if status == TaskStatus.FAILED)
        if failed:
            errors[rid] = stored_error(f"{failed[0]}: {tasks[rid][failed[0]][1] or 'failed'}")
        elif all(status in FINISHED for status in outcome.values()):
            applied.append(rid)
    return applied, errors


def request_tasks_finished(session: Session, request_id: int, *, kinds: Iterable[str]) -> bool:
    """Whether the request's tasks of these system kinds are all done (or skipped)."""
    left = session.scalar(
        select(func.count())
        .select_from(ErasureTask)
        .where(
            ErasureTask.dsar_request_id == request_id,
            ErasureTask.system_kind.in_(list(kinds)),
            ErasureTask.status.not_in(FINISHED),
        )
    )
    return not left


def audit_task(
    session: Session, task: ErasureTask, action: str, *, actor: str, details: dict[str, Any]
) -> None:
    """A task's audit event: every ``task.*`` action names the task the same way."""
    record_event(
        session,
        actor=actor,
        action=action,
        target_type="erasure_task",
        target_id=str(task.id),
        details=details,
    )


def finish_task(
    session: Session,
    task: ErasureTask,
    *,
    actor: str,
    now: datetime,
    data: Any = None,
    note: str | None = None,
    store: ExportStore | None = None,
    upload: tuple[str, bytes] | None = None,
) -> None:
    """Mark a task done once (a second answer for a finished task changes nothing)."""
    if task.status in FINISHED:
        return
    if task.action == DsarKind.ACCESS and (data is not None or upload is not None):
        if store is None:
            raise InvalidInput("no export store to keep the system's data in")
        _keep_file(store, task, data=data, upload=upload)
    move(task, TaskStatus.DONE)
    task.done_at = now
    task.done_by = actor
    task.note = note
    task.subject = None  # what identified the subject is no longer needed
    task.last_error = None
    task.next_attempt_at = None
    task.updated_at = now
    audit_task(
        session,
        task,
        "task.done",
        actor=actor,
        details={
            "system": task.system,
            "kind": task.system_kind,
            "action": task.action,
            "file": bool(task.file_path),
        },
    )


def fail_task(
    session: Session, task: ErasureTask, error: str, *, actor: str, now: datetime
) -> None:
    """A SQL task of a request that failed: the next run tries it again. The error stays on
    the task (it may quote the database); the audit event says which system failed."""
    move(task, TaskStatus.FAILED)
    task.attempts = (task.attempts or 0) + 1
    task.last_error = stored_error(error)
    task.updated_at = now
    audit_task(
        session,
        task,
        "task.failed",
        actor=actor,
        details={"system": task.system, "attempts": task.attempts},
    )


def _keep_file(
    store: ExportStore, task: ErasureTask, *, data: Any, upload: tuple[str, bytes] | None
) -> None:
    """A system's part of an access export, kept in the export store until the ZIP is built;
    the task keeps where, and what the part is called in the ZIP."""
    if upload is not None:
        name, content = upload
        part = _SAFE.sub("_", Path(name).name)[:100] or "upload"
    else:
        content = json.dumps(data, indent=2, ensure_ascii=False, default=str).encode("utf-8")
        part = "data.json"
    stored = store.write(
        Area.TASKS, f"{task.idempotency_key}-{part}", lambda handle: handle.write(content)
    )
    task.file_path, task.file_name = stored.location, part


def settle_owner(session: Session, task: ErasureTask, now: datetime) -> None:
    if task.deletion_record_id is not None:
        applied, _ = settle_records(session, [task.deletion_record_id], now)
        for rid in applied:
            record_event(
                session,
                actor=f"system:{task.system}",
                action="deletion_records.applied",
                target_type="deletion_record",
                target_id=str(rid),
                details={"applied": 1, "last_system": task.system},
            )


def get_task(session: Session, task_id: int, *, lock: bool = False) -> ErasureTask:
    query = select(ErasureTask).where(ErasureTask.id == task_id)
    return first_or_not_found(session, query, f"no task {task_id}", lock=lock)


# ---------------------------------------------------------------- reads


def tasks_of_record(session: Session, record_id: int) -> list[ErasureTask]:
    return list(
        session.scalars(
            select(ErasureTask)
            .where(ErasureTask.deletion_record_id == record_id)
            .order_by(ErasureTask.id)
        )
    )


def tasks_of_request(session: Session, request: DsarRequest) -> list[ErasureTask]:
    """An access request's own tasks; an erasure request's are those of its deletion record."""
    owner = (
        ErasureTask.deletion_record_id == request.deletion_record_id
        if request.kind == DsarKind.ERASURE
        else ErasureTask.dsar_request_id == request.id
    )
    if request.kind == DsarKind.ERASURE and request.deletion_record_id is None:
        return []
    return list(session.scalars(select(ErasureTask).where(owner).order_by(ErasureTask.id)))


def list_tasks(
    session: Session,
    *,
    status: Sequence[str] | None = None,
    kind: str | None = None,
    system: str | None = None,
    limit: int = 100,
) -> list[ErasureTask]:
    query = select(ErasureTask)
    if status:
        query = query.where(ErasureTask.status.in_(list(status)))
    if kind:
        query = query.where(ErasureTask.system_kind == kind)
    if system:
        query = query.where(ErasureTask.system == system)
    return list(session.scalars(query.order_by(ErasureTask.id).limit(limit)))
