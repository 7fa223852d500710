"""Applying accepted deletions, chunk by chunk, through one task per system.

Each record gets a task for every system its bucket reaches (compliance.systems.tasks).
A chunk's SQL tasks are erased system by system, each in one transaction of that system's
database, then marked done, and the records whose every task is done marked applied
(with the audit event), in one compliance transaction. A run killed between the two
redoes that chunk on rerun: deletes find nothing left and every anonymize strategy is
idempotent, so each record ends up applied, and audited, exactly once. If a chunk fails,
its records are retried one by one so a single bad record cannot hold back the rest.
Webhook tasks are sent after the chunk is committed; manual tasks wait for a person, and
their record stays due (not applied) until then.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from compliance import failpoints
from compliance.audit.chain import record_event
from compliance.deletion.records import MAX_CHUNK_SIZE
from compliance.errors import InvalidInput
from compliance.logs import Progress, log_event
from compliance.policy.datamap import DataMap, TableAction
from compliance.store.engines import analyze
from compliance.store.models import ComplianceProfile, DeletionRecord, utcnow
from compliance.systems import tasks as system_tasks

# Subjects per chunk: large enough that the bookkeeping per chunk (claim, mark applied,
# audit) is small beside the erasure, small enough to keep each transaction short.
DEFAULT_CHUNK_SIZE = 1000
# Workers beyond the database's cores only wait on each other.
MAX_WORKERS = 16


@dataclass
class ApplyResult:
    due: int = 0
    applied: int = 0
    failed: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    errors: list[dict[str, object]] = field(default_factory=list)
    elapsed_s: float = 0.0
    executed: bool = False
    #: Records whose SQL part is done but which wait for a webhook answer or a person.
    waiting: int = 0
    #: Per system, tasks finished in this run (or, in a dry run, tasks that would be worked).
    tasks: dict[str, int] = field(default_factory=dict)
    webhooks: dict[str, int] = field(default_factory=dict)


def one_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:500]


def _due(bucket: str, now: datetime) -> tuple[ColumnElement[bool], ...]:
    return (
        DeletionRecord.bucket == bucket,
        DeletionRecord.accepted_for_deletion.is_(True),
        DeletionRecord.deletion_applied_at.is_(None),
        DeletionRecord.deletion_scheduled_at <= now,
    )


def count_due(session: Session, bucket: str | None, now: datetime | None = None) -> int:
    now = now or utcnow()
    query = (
        select(func.count())
        .select_from(DeletionRecord)
        .where(
            DeletionRecord.accepted_for_deletion.is_(True),
            DeletionRecord.deletion_applied_at.is_(None),
            DeletionRecord.deletion_scheduled_at <= now,
        )
    )
    if bucket:
        query = query.where(DeletionRecord.bucket == bucket)
    return session.scalar(query) or 0


def _erase_chunk(
    datamap: DataMap, plan: Sequence[TableAction], records: Sequence[tuple[int, str]]
) -> dict[str, int]:
    engine = datamap.engine_for(plan[0].system) if plan else datamap.engine
    with engine.begin() as conn:
        return datamap.erase(conn, plan, [subject for _, subject in records])


def _erase(
    datamap: DataMap, plan: Sequence[TableAction], records: Sequence[tuple[int, str]]
) -> tuple[list[int], dict[int, str], dict[str, int]]:
    """Erase the records' subjects; return (applied ids, errors by id, rows per table)."""
    try:
        return [rid for rid, _ in records], {}, _erase_chunk(datamap, plan, records)
    except SQLAlchemyError as exc:
        if len(records) == 1:
            return [], {records[0][0]: one_line(exc)}, {}
    applied: list[int] = []
    errors: dict[int, str] = {}
    rows: dict[str, int] = {}
    for record in records:
        ok, failed, one = _erase(datamap, plan, [record])
        applied += ok
        errors.update(failed)
        for table, n in one.items():
            rows[table] = rows.get(table, 0) + n
    return applied, errors, rows


def apply_deletions(
    session: Session,
    datamap: DataMap,
    *,
    actor: str,
    execute: bool,
    bucket: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    now: datetime | None = None,
    workers: int = 1,
) -> ApplyResult:
    """Erase every due accepted record, ``workers`` threads at once (PostgreSQL only).

    Whatever the number of workers, each record is claimed by one of them only
    (``FOR UPDATE SKIP LOCKED``), so it is erased, marked and audited exactly once.
    """
    if not 1 <= workers <= MAX_WORKERS:
        raise InvalidInput(f"workers must be from 1 to {MAX_WORKERS}, got {workers}")
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise InvalidInput(f"--chunk-size must be from 1 to {MAX_CHUNK_SIZE}, got {chunk_size}")
    policy = datamap.policy
    now = now or utcnow()
    if bucket is not None:
        policy.bucket(bucket)
        names = [bucket]
    else:
        names = list(
            session.scalars(
                select(DeletionRecord.bucket)
                .where(
                    DeletionRecord.accepted_for_deletion.is_(True),
                    DeletionRecord.deletion_applied_at.is_(None),
                )
                .distinct()
                .order_by(DeletionRecord.bucket)
            )
        )
        session.rollback()
    if execute:
        analyze(session, DeletionRecord)
    result = ApplyResult(executed=execute)
    result.due = sum(count_due(session, name, now) for name in names)
    progress = Progress("apply_deletions.progress", total=result.due)
    locking = session.get_bind().dialect.name == "postgresql"
    if workers > 1 and not locking:
        raise InvalidInput("parallel workers need PostgreSQL: SQLite lets one writer at a time")
    if not execute:
        workers = 1  # a dry run only counts
    for name in names:
        if name not in policy.buckets and name != "dsar_erasure":
            log_event("apply_deletions.unknown_bucket", bucket=name)
            _fail_bucket(session, name, now, f"bucket '{name}' is no longer in the policy", result)
            continue
        chunks = _BucketRun(datamap, name, now, chunk_size, actor, execute, locking, progress)
        if workers == 1:
            chunks.run(session, result)
        else:
            chunks.run_parallel(session, workers, result)
    result.elapsed_s = round(progress.elapsed, 3)
    return result


@dataclass
class _BucketRun:
    """One bucket's due records, erased chunk by chunk by one worker or several at once."""

    datamap: DataMap
    bucket: str
    now: datetime
    chunk_size: int
    actor: str
    execute: bool
    locking: bool
    progress: Progress
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, session: Session, result: ApplyResult) -> None:
        datamap, name = self.datamap, self.bucket
        policy = datamap.policy
        bucket_def = policy.bucket(name)
        plans = datamap.plans_by_system(bucket_def.tables)
        specs = system_tasks.record_task_specs(policy, bucket_def)
        other = [s for s in specs if s.kind != "sql" and s.status == system_tasks.PENDING]
        last_id = 0
        while True:
            query = (
                select(DeletionRecord.id, ComplianceProfile.subject_id)
                .join(
                    ComplianceProfile, ComplianceProfile.id == DeletionRecord.compliance_profile_id
                )
                .where(*_due(name, self.now), DeletionRecord.id > last_id)
                .order_by(DeletionRecord.id)
                .limit(self.chunk_size)
            )
            if self.locking and self.execute:
                # Two workers never erase the same records: each skips what the other holds.
                query = query.with_for_update(of=DeletionRecord, skip_locked=True)
            records = [(r.id, r.subject_id) for r in session.execute(query)]
            if not records:
                session.rollback()
                break
            last_id = records[-1][0]
            if not self.execute:
                session.rollback()
                keys = [s for _, s in records]
                for system, plan in plans.items():
                    with datamap.engine_for(system).connect() as conn:
                        for step in plan:
                            n = datamap.count(conn, step.table, keys)
                            result.rows[step.table] = result.rows.get(step.table, 0) + n
                for spec in specs:
                    result.tasks[spec.system] = result.tasks.get(spec.system, 0) + len(records)
                self._advance(len(records))
                continue
            record_ids = [rid for rid, _ in records]
            # Read before erasing: a webhook or a person needs the email the erasure removes.
            subjects = subject_details(datamap, [s for _, s in records]) if other else {}
            rows: dict[str, int] = {}
            outcomes: list[tuple[str, list[int], dict[int, str]]] = []
            for system, plan in plans.items():
                todo = set(system_tasks.sql_work(session, system, record_ids))
                chunk = [(rid, subject) for rid, subject in records if rid in todo]
                if not chunk:
                    continue
                ok, errors, system_rows = _erase(datamap, plan, chunk)
                failpoints.hit("apply.between_databases")
                outcomes.append((system, ok, errors))
                result.tasks[system] = result.tasks.get(system, 0) + len(ok)
                for table, n in system_rows.items():
                    rows[table] = rows.get(table, 0) + n
            # Writes to the compliance database only after every erasure is committed.
            system_tasks.ensure_record_tasks(
                session, policy, bucket_def, records, subjects=subjects, now=self.now
            )
            for system, ok, errors in outcomes:
                system_tasks.finish_sql_tasks(session, system, ok, errors, self.now)
            applied, task_errors = system_tasks.settle_records(session, record_ids, utcnow())
            _finish_chunk(session, name, applied, task_errors, rows, actor=self.actor)
            session.commit()
            if other:
                more, task_errors = _run_other_systems(
                    session, datamap, name, record_ids, self.actor, self.now, result
                )
                applied += more
            failed_ids = {rid: m for rid, m in task_errors.items() if rid not in applied}
            result.applied += len(applied)
            result.failed += len(failed_ids)
            result.waiting += len(records) - len(applied) - len(failed_ids)
            for table, n in rows.items():
                result.rows[table] = result.rows.get(table, 0) + n
            for rid, message in failed_ids.items():
                if len(result.errors) < 20:
                    result.errors.append({"record_id": rid, "error": message})
                log_event(
                    "apply_deletions.record_failed", record_id=rid, bucket=name, error=message
                )
            self._advance(len(records), applied=result.applied, failed=result.failed)

    def _advance(self, n: int, **extra: object) -> None:
        with self._lock:
            self.progress.advance(n, **extra)

    def run_parallel(self, session: Session, workers: int, result: ApplyResult) -> None:
        """Each worker has its own sessions and claims chunks the others have not locked."""
        session.rollback()  # hold nothing the workers might wait for
        results = [ApplyResult(executed=True) for _ in range(workers)]
        failures: list[BaseException] = []

        def work(mine: ApplyResult) -> None:
            try:
                with Session(session.get_bind()) as own:
                    self.run(own, mine)
            except BaseException as exc:  # re-raised in the caller's thread below
                failures.append(exc)

        threads = [
            threading.Thread(target=work, args=(r,), name=f"apply-{self.bucket}-{i}")
            for i, r in enumerate(results)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for mine in results:
            result.applied += mine.applied
            result.failed += mine.failed
            result.waiting += mine.waiting
            for total, part in (
                (result.rows, mine.rows),
                (result.tasks, mine.tasks),
                (result.webhooks, mine.webhooks),
            ):
                for key, n in part.items():
                    total[key] = total.get(key, 0) + n
            result.errors += mine.errors[: max(0, 20 - len(result.errors))]
        if failures:
            raise failures[0]


def subject_details(datamap: DataMap, keys: Sequence[str]) -> dict[str, dict[str, str | None]]:
    """What a webhook or a person needs to find each subject: the key and the email."""
    subjects = datamap.policy.subjects
    if not subjects.email:
        return {k: {"id": k, "email": None} for k in keys}
    table = datamap.table(subjects.table)
    values = datamap.coerce_keys(subjects.table, keys)
    with datamap.engine.connect() as conn:
        found = {
            str(key): email
            for key, email in conn.execute(
                select(table.c[subjects.key], table.c[subjects.email]).where(
                    table.c[subjects.key].in_(values)
                )
            )
        }
    return {k: {"id": k, "email": found.get(k)} for k in keys}


def _run_other_systems(
    session: Session,
    datamap: DataMap,
    bucket: str,
    record_ids: list[int],
    actor: str,
    now: datetime,
    result: ApplyResult,
) -> tuple[list[int], dict[int, str]]:
    """Send the chunk's due webhook tasks, then apply the records that became complete."""
    run = system_tasks.run_webhook_tasks(
        session, datamap.policy, actor=actor, now=now, record_ids=record_ids
    )
    for key in ("sent", "done", "accepted", "retrying", "failed"):
        result.webhooks[key] = result.webhooks.get(key, 0) + getattr(run, key)
    applied, errors = system_tasks.settle_records(session, record_ids, utcnow())
    if applied:
        _finish_chunk(session, bucket, applied, {}, {}, actor=actor)
    session.commit()
    return applied, errors


def _finish_chunk(
    session: Session,
    bucket: str,
    applied: list[int],
    errors: dict[int, str],
    rows: dict[str, int],
    *,
    actor: str,
) -> None:
    """The chunk's audit event; ``settle_records`` already marked what is applied."""
    marked = len(applied)
    if not applied and not errors and not rows:
        return
    record_event(
        session,
        actor=actor,
        action="deletion_records.applied",
        target_type="bucket",
        target_id=bucket,
        details={
            "applied": marked,
            "failed": len(errors),
            "record_ids": [min(applied), max(applied)] if applied else [],
            "failed_record_ids": sorted(errors),
            "rows": rows,
        },
    )


def _fail_bucket(
    session: Session, bucket: str, now: datetime, message: str, result: ApplyResult
) -> None:
    ids = list(session.scalars(select(DeletionRecord.id).where(*_due(bucket, now))))
    if result.executed and ids:
        session.execute(
            update(DeletionRecord)
            .where(DeletionRecord.id.in_(ids))
            .values(deletion_error=message, updated_at=now)
        )
        session.commit()
    result.failed += len(ids)
    if ids:
        result.errors.append({"record_id": ids[0], "error": message})
