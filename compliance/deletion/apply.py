"""Applying accepted deletions to the application database, chunk by chunk.

A chunk is erased in one application transaction, then marked applied (with its audit
event) in one compliance transaction. A run killed between the two redoes that chunk on
rerun: deletes find nothing left and every anonymize strategy is idempotent, so each
record ends up applied, and audited, exactly once. If a chunk fails, its records are
retried one by one so a single bad record cannot hold back the rest.
"""

from __future__ import annotations

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
from compliance.store.sql import rows_changed

# Subjects per chunk: large enough that the bookkeeping per chunk (claim, mark applied,
# audit) is small beside the erasure, small enough to keep each transaction short.
DEFAULT_CHUNK_SIZE = 1000


@dataclass
class ApplyResult:
    due: int = 0
    applied: int = 0
    failed: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    errors: list[dict[str, object]] = field(default_factory=list)
    elapsed_s: float = 0.0
    executed: bool = False


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
    with datamap.engine.begin() as conn:
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
) -> ApplyResult:
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
    for name in names:
        if name not in policy.buckets and name != "dsar_erasure":
            log_event("apply_deletions.unknown_bucket", bucket=name)
            _fail_bucket(session, name, now, f"bucket '{name}' is no longer in the policy", result)
            continue
        plan = datamap.erasure_plan(policy.bucket(name).tables)
        last_id = 0
        while True:
            query = (
                select(DeletionRecord.id, ComplianceProfile.subject_id)
                .join(
                    ComplianceProfile, ComplianceProfile.id == DeletionRecord.compliance_profile_id
                )
                .where(*_due(name, now), DeletionRecord.id > last_id)
                .order_by(DeletionRecord.id)
                .limit(chunk_size)
            )
            if locking and execute:
                # Two workers never erase the same records: each skips what the other holds.
                query = query.with_for_update(of=DeletionRecord, skip_locked=True)
            records = [(r.id, r.subject_id) for r in session.execute(query)]
            if not records:
                session.rollback()
                break
            last_id = records[-1][0]
            if not execute:
                session.rollback()
                with datamap.engine.connect() as conn:
                    for step in plan:
                        n = datamap.count(conn, step.table, [s for _, s in records])
                        result.rows[step.table] = result.rows.get(step.table, 0) + n
                progress.advance(len(records))
                continue
            applied, errors, rows = _erase(datamap, plan, records)
            failpoints.hit("apply.between_databases")
            _finish_chunk(session, name, applied, errors, rows, actor=actor, now=utcnow())
            session.commit()
            result.applied += len(applied)
            result.failed += len(errors)
            for table, n in rows.items():
                result.rows[table] = result.rows.get(table, 0) + n
            for rid, message in errors.items():
                if len(result.errors) < 20:
                    result.errors.append({"record_id": rid, "error": message})
                log_event(
                    "apply_deletions.record_failed", record_id=rid, bucket=name, error=message
                )
            progress.advance(len(records), applied=result.applied, failed=result.failed)
    result.elapsed_s = round(progress.elapsed, 3)
    return result


def _finish_chunk(
    session: Session,
    bucket: str,
    applied: list[int],
    errors: dict[int, str],
    rows: dict[str, int],
    *,
    actor: str,
    now: datetime,
) -> None:
    marked = 0
    if applied:
        marked = rows_changed(
            session.execute(
                update(DeletionRecord)
                .where(DeletionRecord.id.in_(applied), DeletionRecord.deletion_applied_at.is_(None))
                .values(deletion_applied_at=now, deletion_error=None, updated_at=now)
            )
        )
    for rid, message in errors.items():
        session.execute(
            update(DeletionRecord)
            .where(DeletionRecord.id == rid)
            .values(deletion_error=message, updated_at=now)
        )
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
