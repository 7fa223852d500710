"""Applying accepted deletions, chunk by chunk, through one task per system.

Each record gets a task for every system its bucket reaches (compliance.systems.tasks).
A chunk's SQL tasks are erased system by system, each in one transaction of that system's
database; then, in one compliance transaction, the tasks are written done (one upsert per
system) and the records whose every task is done marked applied (with the audit event).
A run killed between the two redoes that chunk on rerun: deletes find nothing left and
every anonymize strategy is idempotent, so each record ends up applied, and audited,
exactly once. If a chunk fails, its records are retried one by one so a single bad record
cannot hold back the rest.
Webhook tasks are sent after the chunk is committed; manual tasks wait for a person, and
their record stays due (not applied) until then.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from compliance import failpoints
from compliance.audit.chain import record_event
from compliance.deletion.erase import erase
from compliance.deletion.plans import (
    load_plans,
    record_missing_links,
)
from compliance.deletion.records import MAX_CHUNK_SIZE
from compliance.deletion.screening import BucketWork, Claimed, blocked_records, mark_plan, screen
from compliance.errors import InvalidInput, first_line
from compliance.logs import Progress, log_event
from compliance.policy.datamap import DataMap, TableAction
from compliance.policy.strategies import ErasureAction
from compliance.policy.systems import APP_SYSTEM
from compliance.store.engines import analyze
from compliance.store.models import ComplianceProfile, DeletionBatch, DeletionRecord, utcnow
from compliance.store.queries import record_accepted_open, record_due
from compliance.store.sql import among_ids
from compliance.store.states import RecordState
from compliance.systems import sql_tasks, webhook_tasks
from compliance.systems import tasks as system_tasks

# Subjects per chunk: large enough that the bookkeeping per chunk (claim, mark applied,
# audit) is small beside the erasure, small enough to keep each transaction short. 5000
# rather than 1000 (issue 13): five times fewer round trips for the same subjects.
DEFAULT_CHUNK_SIZE = 5000
# Workers beyond the database's cores only wait on each other.
MAX_WORKERS = 16


@dataclass
class ApplyResult:
    """What became of every due record, the dry run's forecast and the real run's outcome alike.

    Each due record lands in exactly one of: applied (erased), waiting, held, widened,
    blocked, awaiting_export, failed.
    """

    due: int = 0
    applied: int = 0
    #: Records whose erasure failed (an error other than a refusal or a foreign-key block).
    failed: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    errors: list[dict[str, object]] = field(default_factory=list)
    elapsed_s: float = 0.0
    executed: bool = False
    #: Records whose SQL part is done but which wait for a webhook answer or a person.
    #: The dry run counts a webhook not yet answered as waiting, even one that answers at once.
    waiting: int = 0
    #: Per system, tasks finished in this run (or, in a dry run, tasks that would be worked).
    tasks: dict[str, int] = field(default_factory=dict)
    webhooks: dict[str, int] = field(default_factory=dict)
    #: Accepted records refused because a legal hold is in force on their subject.
    held: int = 0
    #: Records refused because the policy now erases more than their batch's accepted plan,
    #: or finds the subject's rows through another link (column, via hop, system, subject key).
    widened: int = 0
    #: Records left for a later run: their subject has an open access request.
    awaiting_export: int = 0
    #: Records a foreign key from kept data blocks: they wait for a policy change or a retry.
    blocked: int = 0
    #: Of the blocked, those found blocked in this run (not parked by an earlier one).
    newly_blocked: int = 0
    #: Records blocked earlier that ``retry_blocked`` lets this run try again.
    retried_blocked: int = 0

    def needing_attention(self) -> int:
        """Records refused (legal hold, widened policy), failed or newly blocked: exit 1.

        Blocked records parked by an earlier run wait for a policy change or an officer's
        ``--retry-blocked``; they do not fail every run. Refused records do, while due.
        """
        return self.held + self.widened + self.failed + self.newly_blocked

    def add(self, other: ApplyResult) -> None:
        """Fold another worker's counts into this one (``due`` is counted once, up front)."""
        for name in (
            "applied", "failed", "waiting", "held", "widened", "awaiting_export", "blocked",
            "newly_blocked",
        ):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for total, part in (
            (self.rows, other.rows),
            (self.tasks, other.tasks),
            (self.webhooks, other.webhooks),
        ):
            for key, n in part.items():
                total[key] = total.get(key, 0) + n
        self.errors += other.errors[: max(0, 20 - len(self.errors))]


def count_due(session: Session, bucket: str | None, now: datetime | None = None) -> int:
    now = now or utcnow()
    query = select(func.count()).select_from(DeletionRecord).where(record_due(now, bucket))
    return session.scalar(query) or 0


def _erase_chunk(
    datamap: DataMap, plan: Sequence[TableAction], records: Sequence[tuple[int, str]]
) -> dict[str, int]:
    engine = datamap.engine_for(plan[0].system) if plan else datamap.engine
    with engine.begin() as conn:
        return erase(datamap, conn, plan, [subject for _, subject in records])


def _erase(
    datamap: DataMap, plan: Sequence[TableAction], records: Sequence[tuple[int, str]]
) -> tuple[list[int], dict[int, str], dict[str, int]]:
    """Erase the records' subjects; return (applied ids, errors by id, rows per table)."""
    try:
        return [rid for rid, _ in records], {}, _erase_chunk(datamap, plan, records)
    except SQLAlchemyError as exc:
        if len(records) == 1:
            return [], {records[0][0]: first_line(exc)}, {}
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


def _retry_blocked(
    session: Session, *, actor: str, execute: bool, bucket: str | None = None
) -> int:
    """Let blocked records be tried again by this run (an officer's call); return how many."""
    where: list[ColumnElement[bool]] = [DeletionRecord.blocked_plan_hash.is_not(None)]
    if bucket is not None:
        where.append(DeletionRecord.bucket == bucket)
    ids = list(session.scalars(select(DeletionRecord.id).where(*where)))
    if not execute or not ids:
        session.rollback()
        return len(ids)
    session.execute(
        update(DeletionRecord)
        .where(among_ids(DeletionRecord.id, ids))
        .values(blocked_plan_hash=None)
    )
    record_event(
        session,
        actor=actor,
        action="deletion_records.retry_blocked",
        target_type="bucket",
        target_id=bucket,
        details={"record_ids": ids[:1000], "records": len(ids)},
    )
    session.commit()
    return len(ids)


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
    retry_blocked: bool = False,
) -> ApplyResult:
    """Erase every due accepted record, ``workers`` threads at once (PostgreSQL only).

    Whatever the number of workers, each record is claimed by one of them only
    (``FOR UPDATE SKIP LOCKED``), so it is erased, marked and audited exactly once.
    ``retry_blocked`` tries again the records a foreign key blocked in earlier runs.
    """
    _check_limits(workers, chunk_size)
    policy = datamap.policy
    now = now or utcnow()
    names = _bucket_names(session, datamap, bucket)
    if execute:
        analyze(session, DeletionRecord)
    result = ApplyResult(executed=execute)
    if execute:  # plans accepted before links were recorded get the links in force first
        record_missing_links(session, policy, actor=actor, now=now)
    if retry_blocked:
        result.retried_blocked = _retry_blocked(
            session, actor=actor, execute=execute, bucket=bucket
        )
    result.due = sum(count_due(session, name, now) for name in names)
    progress = Progress("apply_deletions.progress", total=result.due)
    locking = session.get_bind().dialect.name == "postgresql"
    if workers > 1 and not locking:
        raise InvalidInput("parallel workers need PostgreSQL: SQLite lets one writer at a time")
    if not execute:
        workers = 1  # a dry run only counts
    # A subject due in two buckets has its rows deleted by the first: the dry run then
    # counts none for the second, as the real run finds none.
    deleted: dict[str, set[str]] | None = {} if not execute and len(names) > 1 else None
    for name in names:
        if name not in policy.buckets and not policy.is_erasure_bucket(name):
            log_event("apply_deletions.unknown_bucket", bucket=name)
            _fail_bucket(session, name, now, f"bucket '{name}' is no longer in the policy", result)
            continue
        chunks = _BucketRun(
            datamap, name, now, chunk_size, actor, execute, locking, progress, retry_blocked,
            deleted,
        )  # fmt: skip
        if workers == 1:
            chunks.run(session, result)
        else:
            chunks.run_parallel(session, workers, result)
    result.elapsed_s = round(progress.elapsed, 3)
    return result


def _check_limits(workers: int, chunk_size: int) -> None:
    """Refuse out-of-range settings before anything is read, naming the field at fault."""
    if not 1 <= workers <= MAX_WORKERS:
        raise InvalidInput(
            f"{{field}} must be from 1 to {MAX_WORKERS}, got {workers}", field="workers"
        )
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise InvalidInput(
            f"{{field}} must be from 1 to {MAX_CHUNK_SIZE}, got {chunk_size}", field="chunk_size"
        )


def _bucket_names(session: Session, datamap: DataMap, bucket: str | None) -> list[str]:
    """The buckets to work through: the one asked for, or every one with accepted records.

    Each known bucket's hash keys are checked here, so a missing key refuses the whole run
    before any record of any bucket is touched.
    """
    policy = datamap.policy
    if bucket is not None:
        policy.bucket(bucket)
        names = [bucket]
    else:
        names = list(
            session.scalars(
                select(DeletionRecord.bucket)
                .where(record_accepted_open())
                .distinct()
                .order_by(DeletionRecord.bucket)
            )
        )
        session.rollback()
    for name in names:
        if name in policy.buckets or policy.is_erasure_bucket(name):
            # No key for the hash strategy: refused before any record is touched.
            datamap.require_keys(datamap.erasure_plan(policy.bucket(name).tables))
    return names


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
    #: The dry run of ``--retry-blocked``: records parked earlier are screened like the rest.
    unparked: bool = False
    #: The dry run over several buckets: per table, the subjects whose rows it counted deleted.
    deleted: dict[str, set[str]] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, session: Session, result: ApplyResult) -> None:
        """Claim, screen and erase chunk after chunk until no due record is left.

        The dry run walks the very same chunks and screening, so what it counts is what
        the real run would erase; only the last step of each chunk differs.
        """
        work = BucketWork.of(self.datamap, self.bucket)
        last_id = 0
        while True:
            found = self._claim(session, last_id)
            if not found:
                session.rollback()
                break
            last_id = found[-1].id
            records, refused, held = self._screen_chunk(session, work, found, result)
            if self.execute:
                self._apply_chunk(session, work, records, refused, held, result)
                self._advance(len(found), applied=result.applied, failed=result.failed)
            else:
                self._count_chunk(session, work, records, refused, result)
                self._advance(len(found))

    def _claim(self, session: Session, last_id: int) -> list[Claimed]:
        """The next chunk of due records after ``last_id``, locked for this worker alone."""
        query = (
            select(
                DeletionRecord.id,
                ComplianceProfile.subject_id,
                DeletionRecord.compliance_profile_id,
                # A batch's acceptance, or (no batch) the erasure request's approval.
                func.coalesce(DeletionBatch.accepted_plan_hash, DeletionRecord.accepted_plan_hash),
                DeletionRecord.blocked_plan_hash,
            )
            .join(ComplianceProfile, ComplianceProfile.id == DeletionRecord.compliance_profile_id)
            .outerjoin(DeletionBatch, DeletionBatch.id == DeletionRecord.deletion_batch_id)
            .where(record_due(self.now, self.bucket), DeletionRecord.id > last_id)
            .order_by(DeletionRecord.id)
            .limit(self.chunk_size)
        )
        if self.locking and self.execute:
            # Two workers never erase the same records: each skips what the other holds.
            query = query.with_for_update(of=DeletionRecord, skip_locked=True)
        return [Claimed._make(row) for row in session.execute(query)]

    def _screen_chunk(
        self, session: Session, work: BucketWork, found: list[Claimed], result: ApplyResult
    ) -> tuple[list[tuple[int, str]], dict[int, str], list[int]]:
        """(records to erase, refused ones with their error, those of them held).

        Parked, refused and waiting records are counted here, once, whichever run follows.
        """
        work.accepted.update(
            load_plans(session, {r.accepted_plan_hash for r in found} - set(work.accepted))
        )
        # Blocked before under this very plan: not tried again until it changes.
        parked = (
            set()
            if self.unparked
            else {r.id for r in found if r.blocked_plan_hash == work.current_hash}
        )
        result.blocked += len(parked)
        screened = [r for r in found if r.id not in parked]
        refused, held, waiting = screen(session, screened, work, self.now)
        result.held += len(held)
        result.widened += len(refused) - len(held)
        result.awaiting_export += len(waiting)
        records = [
            (r.id, r.subject_id) for r in screened if r.id not in refused and r.id not in waiting
        ]
        return records, refused, held

    def _count_chunk(
        self,
        session: Session,
        work: BucketWork,
        records: list[tuple[int, str]],
        refused: dict[int, str],
        result: ApplyResult,
    ) -> None:
        """The dry run's share of a chunk: what ``_apply_chunk`` would erase, block and settle.

        The same reads as the real run (which systems still have work, which records a
        foreign key blocks), rows counted where the real run erases them, and the records'
        tasks settled as they would be once the SQL systems are done.
        """
        datamap = self.datamap
        record_ids = [rid for rid, _ in records]
        blocked: dict[int, str] = {}
        rows: dict[str, int] = {}
        for system, plan in work.plans.items():
            todo = set(sql_tasks.sql_work(session, system, record_ids))
            chunk = [(rid, key) for rid, key in records if rid in todo]
            if not chunk:
                continue
            if system == APP_SYSTEM:
                stopped = blocked_records(datamap, work.blocks, chunk, todo)
                blocked.update(stopped)
                chunk = [(rid, key) for rid, key in chunk if rid not in stopped]
            keys = [key for _, key in chunk]
            deleted = self.deleted if self.deleted is not None else {}
            with datamap.engine_for(system).connect() as conn:
                for step in plan:
                    gone = deleted.setdefault(step.table, set())
                    left = [key for key in keys if key not in gone]
                    n = datamap.count(conn, step.table, left)
                    rows[step.table] = rows.get(step.table, 0) + n
                    if step.action == ErasureAction.DELETE:
                        gone.update(left)
            result.tasks[system] = result.tasks.get(system, 0) + len(chunk)
        applied, errors = system_tasks.forecast_settle(
            session,
            [rid for rid in record_ids if rid not in blocked],
            finishing=set(work.plans),
            specs=work.specs,
        )
        session.rollback()
        self._tally(result, records, applied, errors, refused, blocked, rows)

    def _erase_systems(
        self,
        session: Session,
        work: BucketWork,
        records: list[tuple[int, str]],
        result: ApplyResult,
    ) -> tuple[list[tuple[str, list[int], dict[int, str]]], dict[int, str], dict[str, int]]:
        """Erase the chunk in each SQL system, each in a transaction of its own database.

        Returns (per system: done ids and errors; records blocked; rows per table). Only
        reads the compliance database, so nothing there waits on the erasures.
        """
        record_ids = [rid for rid, _ in records]
        blocked: dict[int, str] = {}
        rows: dict[str, int] = {}
        outcomes: list[tuple[str, list[int], dict[int, str]]] = []
        for system, plan in work.plans.items():
            todo = set(sql_tasks.sql_work(session, system, record_ids))
            chunk = [(rid, subject) for rid, subject in records if rid in todo]
            if not chunk:
                continue
            ok, errors, system_rows = _erase(self.datamap, plan, chunk)
            if system == APP_SYSTEM:  # worded as what to change, and parked
                stopped = blocked_records(self.datamap, work.blocks, chunk, errors)
                errors.update(stopped)
                blocked.update(stopped)
            failpoints.hit("apply.between_databases")
            outcomes.append((system, ok, errors))
            result.tasks[system] = result.tasks.get(system, 0) + len(ok)
            for table, n in system_rows.items():
                rows[table] = rows.get(table, 0) + n
        return outcomes, blocked, rows

    def _apply_chunk(
        self,
        session: Session,
        work: BucketWork,
        records: list[tuple[int, str]],
        refused: dict[int, str],
        held: list[int],
        result: ApplyResult,
    ) -> None:
        """Erase a chunk, then record it in one compliance transaction (see the module)."""
        record_ids = [rid for rid, _ in records]
        # Read before erasing: a webhook or a person needs the email the erasure removes.
        keys = [s for _, s in records]
        kind = work.bucket.subject
        subjects = self.datamap.subject_details(kind, keys) if work.other else {}
        outcomes, blocked, rows = self._erase_systems(session, work, records, result)
        # Writes to the compliance database only after every erasure is committed.
        for system, ok, errors in outcomes:
            sql_tasks.finish_sql_tasks(session, system, ok, errors, self.now)
        system_tasks.ensure_record_tasks(
            session,
            self.datamap.policy,
            work.bucket,
            records,
            subjects=subjects,
            now=self.now,
            skip_systems={system for system, _, _ in outcomes},
        )
        applied, task_errors = system_tasks.settle_records(
            session, record_ids, utcnow(), plan_hash=work.current_hash
        )
        mark_plan(session, applied, blocked, refused, work.current, work.current_hash, self.now)
        _finish_chunk(
            session,
            self.bucket,
            applied,
            {**task_errors, **refused},
            rows,
            actor=self.actor,
            held=held,
            blocked=blocked,
        )
        session.commit()
        if work.other and record_ids:
            # Settled again after the webhooks: its errors replace the first ones (a record
            # still failed is among them again), never the refusals, counted apart.
            more, task_errors = _run_other_systems(
                session, self.datamap, self.bucket, record_ids, self.actor, self.now, result
            )
            applied += more
        self._tally(result, records, applied, task_errors, refused, blocked, rows)

    def _tally(
        self,
        result: ApplyResult,
        records: list[tuple[int, str]],
        applied: list[int],
        task_errors: dict[int, str],
        refused: dict[int, str],
        blocked: dict[int, str],
        rows: dict[str, int],
    ) -> None:
        """Add a chunk to the run's counts (refusals were counted by the screening).

        ``records`` are the chunk's records neither refused nor waiting for an export: each
        is applied, blocked, failed or waiting for another system.
        """
        failed = {
            rid: m for rid, m in task_errors.items() if rid not in applied and rid not in blocked
        }
        result.applied += len(applied)
        result.failed += len(failed)
        result.blocked += len(blocked)
        result.newly_blocked += len(blocked)
        result.waiting += len(records) - len(applied) - len(failed) - len(blocked)
        for table, n in rows.items():
            result.rows[table] = result.rows.get(table, 0) + n
        for event, errors in (("refused", refused), ("blocked", blocked), ("failed", failed)):
            for rid, message in errors.items():
                if len(result.errors) < 20:
                    result.errors.append({"record_id": rid, "error": message})
                if self.execute:
                    log_event(
                        f"apply_deletions.record_{event}",
                        record_id=rid,
                        bucket=self.bucket,
                        error=message,
                    )

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
            result.add(mine)
        if failures:
            raise failures[0]


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
    run = webhook_tasks.run_webhook_tasks(
        session, datamap.policy, actor=actor, now=now, record_ids=record_ids
    )
    for key, n in run.counts().items():
        result.webhooks[key] = result.webhooks.get(key, 0) + n
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
    held: Sequence[int] = (),
    blocked: Mapping[int, str] | None = None,
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
            RecordState.APPLIED: marked,
            RecordState.FAILED: len(errors),
            "record_ids": sorted(applied),
            "failed_record_ids": sorted(errors),
            "rows": rows,
            **({"held_record_ids": sorted(held)} if held else {}),
            **({"blocked_record_ids": sorted(blocked)} if blocked else {}),
        },
    )


def _fail_bucket(
    session: Session, bucket: str, now: datetime, message: str, result: ApplyResult
) -> None:
    ids = list(session.scalars(select(DeletionRecord.id).where(record_due(now, bucket))))
    if result.executed and ids:
        session.execute(
            update(DeletionRecord)
            .where(among_ids(DeletionRecord.id, ids))
            .values(deletion_error=message, updated_at=now)
        )
        session.commit()
    result.failed += len(ids)
    if ids:
        result.errors.append({"record_id": ids[0], "error": message})
