"""Tasks: one per system for every deletion record and DSAR request, worked through by the jobs.

A record is applied, and an access request completed, only when each of its tasks is done
(or skipped, for a system that holds only retained data). SQL tasks are carried out by
``apply-deletions`` and ``process-dsar-requests`` as before, one engine per system; webhook
tasks are sent with a signed body and an idempotency key fixed when the task was created,
and retried with exponential backoff; manual tasks wait for a person to confirm them.

Crash safety: a webhook task is marked ``sent`` (and committed) before the request leaves,
so a run killed afterwards resends it, after a short lease, with the same key; the
service's answer is stored under a condition on the task's state, so a late duplicate
answer changes nothing.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    ScalarSelect,
    Select,
    String,
    Subquery,
    Text,
    and_,
    bindparam,
    case,
    func,
    literal,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from compliance import failpoints
from compliance.audit.chain import record_event
from compliance.errors import Conflict, InvalidInput, NotFound, stored_error
from compliance.free_text import free_text
from compliance.logs import log_event
from compliance.policy.model import Bucket, Policy
from compliance.policy.systems import System, SystemKind
from compliance.roles import COMPLIANCE_OFFICER, Identity, require
from compliance.storage import Area, ExportStore, export_store
from compliance.store.models import DeletionRecord, DsarRequest, ErasureTask, utcnow
from compliance.store.queries import first_or_not_found, record_open
from compliance.store.sql import among_ids, rows_changed
from compliance.store.states import DsarKind, TaskStatus, move
from compliance.systems import webhook
from compliance.systems.payloads import task_details
from compliance.systems.webhook import WireStatus

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


def _insert(session: Session) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


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
        _insert(session)(table)
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


# ---------------------------------------------------------------- SQL tasks


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
    insert = _insert(session)(table)
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


# ---------------------------------------------------------------- webhooks


@dataclass
class WebhookRun:
    sent: int = 0
    done: int = 0
    accepted: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[dict[str, object]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Each counter by its name (sent, done, accepted, retrying, failed), in that order."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "errors"}


def _lease(system: System) -> timedelta:
    """A sent task with no answer after this long is taken for lost and sent again (same key)."""
    return timedelta(seconds=2 * system.timeout_s + 5)


def _due_webhook(now: datetime, systems: Mapping[str, System]) -> Any:
    """Pending tasks whose time has come, lost sends, and accepted ones due for a poll."""
    lost = [
        and_(ErasureTask.system == name, ErasureTask.sent_at <= now - _lease(system))
        for name, system in systems.items()
    ]
    pollable = [n for n, s in systems.items() if s.status_url]
    return and_(
        ErasureTask.system_kind == SystemKind.WEBHOOK,
        ErasureTask.system.in_(list(systems)),
        or_(
            and_(
                ErasureTask.status == TaskStatus.PENDING,
                or_(ErasureTask.next_attempt_at.is_(None), ErasureTask.next_attempt_at <= now),
            ),
            and_(
                ErasureTask.status == TaskStatus.SENT, ErasureTask.accepted_at.is_(None), or_(*lost)
            ),
            and_(
                ErasureTask.status == TaskStatus.SENT,
                ErasureTask.accepted_at.is_not(None),
                ErasureTask.system.in_(pollable),
                ErasureTask.next_attempt_at <= now,
            ),
        ),
    )


def _reference(session: Session, task: ErasureTask) -> str:
    if task.dsar_request_id is not None:
        return (
            session.scalar(
                select(DsarRequest.reference).where(DsarRequest.id == task.dsar_request_id)
            )
            or f"request-{task.dsar_request_id}"
        )
    from_request = session.scalar(
        select(DsarRequest.reference).where(
            DsarRequest.deletion_record_id == task.deletion_record_id
        )
    )
    return from_request or f"DR-{task.deletion_record_id}"


def run_webhook_tasks(
    session: Session,
    policy: Policy,
    *,
    actor: str,
    now: datetime | None = None,
    record_ids: Sequence[int] | None = None,
    request_ids: Sequence[int] | None = None,
    store: ExportStore | None = None,
) -> WebhookRun:
    """Send (or poll) every due webhook task of these records or requests, one at a time.

    Each task is claimed with a conditional UPDATE committed before the request leaves, so
    two workers never send it at once and a crash leaves evidence that it may have gone.
    """
    now = now or utcnow()
    systems = {n: s for n, s in policy.systems.items() if s.kind == SystemKind.WEBHOOK}
    run = WebhookRun()
    if not systems:
        return run
    secrets = {name: webhook.secret_for(system) for name, system in systems.items()}
    query = select(ErasureTask.id).where(_due_webhook(now, systems)).order_by(ErasureTask.id)
    if record_ids is not None:
        query = query.where(among_ids(ErasureTask.deletion_record_id, record_ids))
    if request_ids is not None:
        query = query.where(ErasureTask.dsar_request_id.in_(list(request_ids)))
    ids = list(session.scalars(query))
    session.rollback()
    for task_id in ids:
        task = session.get(ErasureTask, task_id)
        assert task is not None
        polling = task.status == TaskStatus.SENT and task.accepted_at is not None
        if not _claim_webhook_task(session, task, systems, now, polling=polling):
            continue  # another worker has it
        system = systems[task.system]
        answer = _ask_system(session, task, system, secrets[task.system], polling=polling)
        if answer is None:
            continue
        if not polling:
            run.sent += 1
        _outcome(session, task, system, answer, actor=actor, now=now, store=store, run=run)
        session.commit()
    return run


def _claim_webhook_task(
    session: Session,
    task: ErasureTask,
    systems: Mapping[str, System],
    now: datetime,
    *,
    polling: bool,
) -> bool:
    """Claim the task (committed) if it is still due; False when another worker took it."""
    claim = (
        update(ErasureTask)
        .where(ErasureTask.id == task.id, _due_webhook(now, systems))
        .values(
            status=TaskStatus.SENT,
            sent_at=now if not polling else ErasureTask.sent_at,
            attempts=ErasureTask.attempts + (0 if polling else 1),
            next_attempt_at=now + _poll_interval(task, now) if polling else None,
            updated_at=now,
        )
    )
    if rows_changed(session.execute(claim)) != 1:
        session.rollback()
        return False
    session.commit()
    session.refresh(task)
    return True


def _ask_system(
    session: Session, task: ErasureTask, system: System, secret: bytes, *, polling: bool
) -> webhook.Answer | None:
    """Send the task, or poll for it; None when a poll says to ask again later."""
    reference = _reference(session, task)
    if polling:
        answer = webhook.poll(
            system, reference=reference, idempotency_key=task.idempotency_key, secret=secret
        )
        if answer.status == WireStatus.ACCEPTED or not answer.declared:
            # Still working, or the status URL did not answer: ask again later.
            task.last_error = None if answer.declared else answer.error
            session.commit()
            return None
        return answer
    payload = {
        "kind": task.action,
        "reference": reference,
        "idempotency_key": task.idempotency_key,
        "subject": task.subject or {},
        **task_details(session, task),
    }
    log_event("task.sending", task_id=task.id, system=task.system, attempt=task.attempts)
    failpoints.hit("tasks.before_send")
    answer = webhook.send(system, payload, idempotency_key=task.idempotency_key, secret=secret)
    failpoints.hit("tasks.after_send")
    return answer


def _poll_interval(task: ErasureTask, now: datetime) -> timedelta:
    """Poll often at first, then less: half the time since acceptance, 1 minute to 6 hours."""
    since = now - (task.accepted_at or now)
    return max(timedelta(minutes=1), min(since / 2, MAX_BACKOFF))


def _outcome(
    session: Session,
    task: ErasureTask,
    system: System,
    answer: webhook.Answer,
    *,
    actor: str,
    now: datetime,
    store: ExportStore | None,
    run: WebhookRun,
) -> None:
    """Record what the system answered: done, accepted for later, or a failed attempt."""
    if answer.status == WireStatus.DONE:
        finish_task(
            session,
            task,
            actor=f"system:{task.system}",
            now=now,
            data=answer.data,
            store=store,
        )
        run.done += 1
    elif answer.status == WireStatus.ACCEPTED:
        task.accepted_at = task.accepted_at or now
        task.next_attempt_at = now + timedelta(minutes=1) if system.status_url else None
        task.last_error = None
        run.accepted += 1
        record_event(
            session,
            actor=actor,
            action="task.accepted",
            target_type="erasure_task",
            target_id=str(task.id),
            details={"system": task.system},
        )
    else:
        failed = _count_failed_attempt(task, system, answer.error, now, run)
        if failed:
            record_event(
                session,
                actor=actor,
                action="task.failed",
                target_type="erasure_task",
                target_id=str(task.id),
                details={
                    "system": task.system,
                    "attempts": task.attempts,
                    "error": task.last_error,
                },
            )
    task.updated_at = now


def _count_failed_attempt(
    task: ErasureTask, system: System, error: str | None, now: datetime, run: WebhookRun
) -> bool:
    """Retry later with backoff, or fail the task (True) once it has used its attempts."""
    task.last_error = stored_error(error or WireStatus.FAILED)
    task.accepted_at = None
    failed = task.attempts >= system.max_attempts
    if failed:
        move(task, TaskStatus.FAILED)
        task.next_attempt_at = None
        run.failed += 1
    else:
        move(task, TaskStatus.PENDING)
        task.next_attempt_at = now + backoff(task.attempts)
        run.retrying += 1
    if len(run.errors) < 20:
        run.errors.append({"task_id": task.id, "system": task.system, "error": task.last_error})
    log_event(
        "task.attempt_failed",
        task_id=task.id,
        system=task.system,
        attempts=task.attempts,
        error=task.last_error,
    )
    return failed


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
    record_event(
        session,
        actor=actor,
        action="task.done",
        target_type="erasure_task",
        target_id=str(task.id),
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
    record_event(
        session,
        actor=actor,
        action="task.failed",
        target_type="erasure_task",
        target_id=str(task.id),
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


# ---------------------------------------------------------------- callbacks, people, retries


def receive_callback(
    session: Session,
    policy: Policy,
    body: bytes,
    headers: Mapping[str, str],
    *,
    now: datetime | None = None,
    store: ExportStore | None = None,
) -> ErasureTask:
    """A webhook service reports a task it accepted earlier: ``{"idempotency_key", "status"}``.

    Signed like every message; an unknown key, a bad or stale signature is refused, and a
    repeated callback for a finished task changes nothing (replays are harmless).
    """
    now = now or utcnow()
    key = _callback_key(body)
    task = session.scalars(
        select(ErasureTask).where(ErasureTask.idempotency_key == key).with_for_update()
    ).first()
    if task is None or task.system_kind != SystemKind.WEBHOOK:
        raise NotFound("no webhook task with that idempotency key")
    system = policy.system(task.system)
    try:
        # Signed over this task's key: an answer captured for another task is refused.
        webhook.verify(webhook.secret_for(system), headers, body, key=key)
    except webhook.SignatureError as exc:
        raise InvalidInput(f"callback refused: {exc}") from None
    if task.status in FINISHED:
        session.rollback()
        return task
    _apply_answer(session, policy, task, body, now=now, store=store)
    _settle_owner(session, task, now)
    session.commit()
    return task


def _callback_key(body: bytes) -> str:
    """The callback's idempotency key, read only from a body small, shallow and JSON enough."""
    if len(body) > webhook.MAX_ANSWER_BYTES:
        raise InvalidInput("the callback is larger than 20 MB")
    try:
        document = json.loads(body.decode("utf-8"))
        key = webhook.check_key(document["idempotency_key"])
    except (ValueError, KeyError, TypeError, RecursionError):  # JSON, UTF-8, 4,300+ digits
        raise InvalidInput("the callback is not JSON with an idempotency_key") from None
    except webhook.SignatureError as exc:
        raise InvalidInput(f"callback refused: {exc}") from None
    if webhook.nesting(document) > webhook.MAX_NESTING:
        raise InvalidInput(f"the callback nests deeper than {webhook.MAX_NESTING} levels")
    return key


def _apply_answer(
    session: Session,
    policy: Policy,
    task: ErasureTask,
    body: bytes,
    *,
    now: datetime,
    store: ExportStore | None,
) -> None:
    """Moves an open task as the verified callback says: done, failed, or still accepted."""
    answer = webhook.parse_answer(body)
    if answer.status == WireStatus.DONE:
        finish_task(
            session,
            task,
            actor=f"system:{task.system}",
            now=now,
            data=answer.data,
            store=store or export_store(policy),
        )
    elif answer.status == WireStatus.FAILED:
        move(task, TaskStatus.FAILED)
        task.last_error = stored_error(answer.error or WireStatus.FAILED)
        task.updated_at = now
        record_event(
            session,
            actor=f"system:{task.system}",
            action="task.failed",
            target_type="erasure_task",
            target_id=str(task.id),
            details={"system": task.system, "error": task.last_error},
        )
    else:
        task.accepted_at = task.accepted_at or now


def _settle_owner(session: Session, task: ErasureTask, now: datetime) -> None:
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


def confirm_task(
    session: Session,
    task_id: int,
    *,
    actor: Identity,
    note: str,
    execute: bool,
    upload: tuple[str, bytes] | None = None,
    store: ExportStore | None = None,
    now: datetime | None = None,
) -> ErasureTask:
    """A compliance officer says a manual task is done, with a note (and, for access, the file)."""
    by = require(actor, COMPLIANCE_OFFICER, to="confirm system tasks")
    said = free_text(note, field="note")
    if said is None:
        raise InvalidInput("confirming a manual task needs a note saying what was done")
    task = get_task(session, task_id, lock=execute)
    if task.system_kind != SystemKind.MANUAL:
        raise Conflict(
            f"task {task_id} is a {task.system_kind} task; only manual ones are confirmed"
        )
    if task.status in FINISHED:
        raise Conflict(f"task {task_id} is already {task.status} (by {task.done_by or 'nobody'})")
    if task.action == DsarKind.ACCESS:
        if upload is None or not upload[1]:
            raise InvalidInput("an access task needs the file with the system's data")
        if len(upload[1]) > MAX_UPLOAD_BYTES:
            raise InvalidInput("the file is larger than 50 MB")
    if not execute:
        session.rollback()
        return task
    now = now or utcnow()
    finish_task(session, task, actor=by, now=now, note=said, upload=upload, store=store)
    _settle_owner(session, task, now)
    session.commit()
    return task


def retry_task(session: Session, task_id: int, *, actor: Identity, execute: bool) -> ErasureTask:
    """An officer puts a failed task back in the queue: the next run tries it at once."""
    by = require(actor, COMPLIANCE_OFFICER, to="retry system tasks")
    task = get_task(session, task_id, lock=execute)
    if task.status != TaskStatus.FAILED:
        raise Conflict(f"task {task_id} is {task.status}; only failed tasks are retried")
    if not execute:
        session.rollback()
        return task
    previous = task.last_error
    move(task, TaskStatus.PENDING)
    task.attempts = 0
    task.next_attempt_at = None
    task.accepted_at = None
    task.updated_at = utcnow()
    record_event(
        session,
        actor=by,
        action="task.retried",
        target_type="erasure_task",
        target_id=str(task.id),
        details={"system": task.system, "previous_error": previous},
    )
    session.commit()
    return task


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


# ---------------------------------------------------------------- manual tasks in bulk


@dataclass(frozen=True)
class ManualTaskFilter:
    """Which waiting manual tasks a person looks at: by system, kind of request and age."""

    system: str | None = None
    action: str | None = None  # erasure | access
    older_than_days: int | None = None

    def conditions(self, now: datetime) -> list[Any]:
        """Waiting manual tasks (pending: a manual task is never sent), narrowed."""
        if self.older_than_days is not None and self.older_than_days < 0:
            raise InvalidInput("{field} must be 0 or more", field="older_than_days")
        where: list[Any] = [
            ErasureTask.system_kind == SystemKind.MANUAL,
            ErasureTask.status == TaskStatus.PENDING,
        ]
        if self.system:
            where.append(ErasureTask.system == self.system)
        if self.action:
            where.append(ErasureTask.action == self.action)
        if self.older_than_days:
            where.append(ErasureTask.created_at <= now - timedelta(days=self.older_than_days))
        return where


def count_manual_tasks(
    session: Session, filters: ManualTaskFilter, *, now: datetime | None = None
) -> int:
    """How many manual tasks wait under ``filters``: the whole list, not one page of it."""
    where = filters.conditions(now or utcnow())
    return int(session.scalar(select(func.count()).select_from(ErasureTask).where(*where)) or 0)


def manual_tasks(
    session: Session,
    filters: ManualTaskFilter,
    *,
    limit: int,
    offset: int = 0,
    now: datetime | None = None,
) -> list[ErasureTask]:
    """One page of waiting manual tasks, oldest first."""
    where = filters.conditions(now or utcnow())
    query = select(ErasureTask).where(*where).order_by(ErasureTask.id)
    return list(session.scalars(query.limit(limit).offset(offset)))


def manual_task_ids(
    session: Session, filters: ManualTaskFilter, *, now: datetime | None = None
) -> list[int]:
    """Every waiting manual task under ``filters``: what "all matching the filter" means."""
    where = filters.conditions(now or utcnow())
    return list(session.scalars(select(ErasureTask.id).where(*where).order_by(ErasureTask.id)))


@dataclass(frozen=True)
class TaskConfirmation:
    """One task of a bulk confirmation: confirmed, or skipped with why."""

    task_id: int
    confirmed: bool
    why_not: str | None = None


@dataclass(frozen=True)
class ConfirmPlan:
    """What confirming these tasks with one note would do: which are confirmed, which not."""

    note: str
    task_ids: tuple[int, ...]
    skipped: tuple[TaskConfirmation, ...]


def _not_confirmable(task: ErasureTask) -> str | None:
    if task.system_kind != SystemKind.MANUAL:
        return f"task {task.id} is a {task.system_kind} task; only manual ones are confirmed"
    if task.status in FINISHED:
        return f"task {task.id} is already {task.status} (by {task.done_by or 'nobody'})"
    if task.action == DsarKind.ACCESS:
        return f"task {task.id} is an access task: confirm it on its own, with its file"
    return None


def plan_confirm_tasks(session: Session, task_ids: Sequence[int], *, note: str) -> ConfirmPlan:
    """Check the note once and each task on its own; changes nothing."""
    said = free_text(note, field="note")
    if said is None:
        raise InvalidInput("confirming manual tasks needs a note saying what was done")
    wanted = list(dict.fromkeys(int(t) for t in task_ids))
    if not wanted:
        raise InvalidInput("choose at least one task")
    found = {
        t.id: t
        for t in session.scalars(select(ErasureTask).where(among_ids(ErasureTask.id, wanted)))
    }
    session.rollback()
    todo: list[int] = []
    skipped: list[TaskConfirmation] = []
    for task_id in wanted:
        task = found.get(task_id)
        why = f"no task {task_id}" if task is None else _not_confirmable(task)
        if why is None:
            todo.append(task_id)
        else:
            skipped.append(TaskConfirmation(task_id, False, why))
    return ConfirmPlan(said, tuple(todo), tuple(skipped))


def carry_out_confirm_tasks(
    session: Session, plan: ConfirmPlan, *, actor: Identity, now: datetime | None = None
) -> list[TaskConfirmation]:
    """Confirm each planned task in its own transaction with its own audit event, as one
    ``confirm_task`` would; a task someone else finished meanwhile is skipped with why."""
    by = require(actor, COMPLIANCE_OFFICER, to="confirm system tasks")
    results = list(plan.skipped)
    for task_id in plan.task_ids:
        task = session.scalars(
            select(ErasureTask).where(ErasureTask.id == task_id).with_for_update()
        ).first()
        why = f"no task {task_id}" if task is None else _not_confirmable(task)
        if task is None or why is not None:
            session.rollback()
            results.append(TaskConfirmation(task_id, False, why))
            continue
        at = now or utcnow()
        finish_task(session, task, actor=by, now=at, note=plan.note)
        _settle_owner(session, task, at)
        session.commit()
        results.append(TaskConfirmation(task_id, True))
    return sorted(results, key=lambda r: r.task_id)


def confirm_tasks(
    session: Session,
    task_ids: Sequence[int],
    *,
    actor: Identity,
    note: str,
    execute: bool,
    now: datetime | None = None,
) -> list[TaskConfirmation]:
    """Confirm several manual erasure tasks with one note, each confirmed and audited on its
    own; the dry run returns what would be confirmed (``confirmed`` true) and skipped."""
    require(actor, COMPLIANCE_OFFICER, to="confirm system tasks")
    plan = plan_confirm_tasks(session, task_ids, note=note)
    if not execute:
        would = [TaskConfirmation(t, True) for t in plan.task_ids]
        return sorted([*would, *plan.skipped], key=lambda r: r.task_id)
    return carry_out_confirm_tasks(session, plan, actor=actor, now=now)
