"""Applying accepted deletions to the application database, chunk by chunk.

A chunk is erased in one application transaction, then marked applied (with its audit
event) in one compliance transaction. A run killed between the two redoes that chunk on
rerun: deletes find nothing left and every anonymize strategy is idempotent, so each
record ends up applied, and audited, exactly once. If a chunk fails, its records are
retried one by one so a single bad record cannot hold back the rest.
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from compliance import failpoints
from compliance.audit.chain import record_event
from compliance.deletion.holds import awaiting_access_export, held_profiles
from compliance.deletion.plans import (
    PlanDocument,
    load_plans,
    plan_document,
    plan_hash,
    store_plan,
    widening,
)
from compliance.deletion.records import MAX_CHUNK_SIZE
from compliance.errors import InvalidInput
from compliance.logs import Progress, log_event
from compliance.policy.cascades import Block
from compliance.policy.datamap import DataMap, TableAction
from compliance.store.engines import analyze
from compliance.store.models import ComplianceProfile, DeletionBatch, DeletionRecord, utcnow
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
    #: Accepted records refused because a legal hold is in force on their subject.
    held: int = 0
    #: Records refused because the policy now erases more than their batch's accepted plan.
    widened: int = 0
    #: Records left for a later run: their subject has an open access request.
    waiting: int = 0
    #: Records a foreign key from kept data blocks: they wait for a policy change or a retry.
    blocked: int = 0


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


def retry_blocked(session: Session, *, actor: str, execute: bool, bucket: str | None = None) -> int:
    """Let blocked records be tried again on the next run (an officer's call); return how many."""
    where: list[ColumnElement[bool]] = [DeletionRecord.blocked_plan_hash.is_not(None)]
    if bucket is not None:
        where.append(DeletionRecord.bucket == bucket)
    ids = list(session.scalars(select(DeletionRecord.id).where(*where)))
    if not execute or not ids:
        session.rollback()
        return len(ids)
    session.execute(
        update(DeletionRecord).where(DeletionRecord.id.in_(ids)).values(blocked_plan_hash=None)
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
        current = plan_document(policy, name)
        current_hash = plan_hash(current)
        blocks = datamap.plan_blocks(plan)
        accepted_plans: dict[str, PlanDocument] = {}
        last_id = 0
        while True:
            query = (
                select(
                    DeletionRecord.id,
                    ComplianceProfile.subject_id,
                    DeletionRecord.compliance_profile_id,
                    DeletionBatch.accepted_plan_hash,
                    DeletionRecord.blocked_plan_hash,
                )
                .join(
                    ComplianceProfile, ComplianceProfile.id == DeletionRecord.compliance_profile_id
                )
                .outerjoin(DeletionBatch, DeletionBatch.id == DeletionRecord.deletion_batch_id)
                .where(*_due(name, now), DeletionRecord.id > last_id)
                .order_by(DeletionRecord.id)
                .limit(chunk_size)
            )
            if locking and execute:
                # Two workers never erase the same records: each skips what the other holds.
                query = query.with_for_update(of=DeletionRecord, skip_locked=True)
            rows = session.execute(query).all()
            if not rows:
                session.rollback()
                break
            last_id = rows[-1].id
            accepted_plans.update(
                load_plans(session, {r.accepted_plan_hash for r in rows} - set(accepted_plans))
            )
            # Blocked before under this very plan: not tried again until it changes.
            parked = {r.id for r in rows if r.blocked_plan_hash == current_hash}
            result.blocked += len(parked)
            rows = [r for r in rows if r.id not in parked]
            refused, held, waiting = _screen(session, rows, current, accepted_plans, now)
            result.held += len(held)
            result.widened += len(refused) - len(held)
            result.waiting += len(waiting)
            records = [
                (r.id, r.subject_id) for r in rows if r.id not in refused and r.id not in waiting
            ]
            if not execute:
                blocked = _blocked(datamap, blocks, records, {rid for rid, _ in records})
                result.failed += len(refused)
                result.blocked += len(blocked)
                for rid, message in {**refused, **blocked}.items():
                    if len(result.errors) < 20:
                        result.errors.append({"record_id": rid, "error": message})
                records = [(rid, key) for rid, key in records if rid not in blocked]
                session.rollback()
                with datamap.engine.connect() as conn:
                    for step in plan if records else ():
                        n = datamap.count(conn, step.table, [s for _, s in records])
                        result.rows[step.table] = result.rows.get(step.table, 0) + n
                progress.advance(len(rows))
                continue
            applied, errors, erased = _erase(datamap, plan, records) if records else ([], {}, {})
            blocked = _blocked(datamap, blocks, records, errors)
            errors.update(blocked)
            errors.update(refused)
            failpoints.hit("apply.between_databases")
            if applied:
                store_plan(session, current)  # kept for replay-erasures, once per plan
            _finish_chunk(
                session,
                name,
                applied,
                errors,
                erased,
                actor=actor,
                now=utcnow(),
                held=held,
                plan=current_hash,
                blocked=blocked,
            )
            session.commit()
            result.applied += len(applied)
            result.failed += len(errors)
            for table, n in erased.items():
                result.rows[table] = result.rows.get(table, 0) + n
            for rid, message in errors.items():
                if len(result.errors) < 20:
                    result.errors.append({"record_id": rid, "error": message})
                log_event(
                    "apply_deletions.record_failed", record_id=rid, bucket=name, error=message
                )
            progress.advance(len(rows), applied=result.applied, failed=result.failed)
    result.elapsed_s = round(progress.elapsed, 3)
    return result


def _blocked(
    datamap: DataMap,
    blocks: Sequence[Block],
    records: Sequence[tuple[int, str]],
    among: Container[int],
) -> dict[int, str]:
    """Records (of those ``among``) a known foreign-key block stops, with the error to store.

    Worded as what to change, not as the database's message: the officer needs to know
    that kept data holds the row, and which setting releases it.
    """
    suspects = [(rid, key) for rid, key in records if rid in among]
    if not blocks or not suspects:
        return {}
    found: dict[int, str] = {}
    with datamap.engine.connect() as conn:
        for block in blocks:
            stopped = datamap.referenced_subjects(
                conn, block.foreign_key, [key for rid, key in suspects if rid not in found]
            )
            for rid, key in suspects:
                if key in stopped and rid not in found:
                    found[rid] = f"blocked by {block.advice}; waits for that change or a retry"[
                        :1000
                    ]
    return found


def _screen(
    session: Session,
    rows: Sequence[Any],
    current: PlanDocument,
    accepted_plans: dict[str, PlanDocument],
    now: datetime,
) -> tuple[dict[int, str], list[int], set[int]]:
    """(refused records with their error, those of them on legal hold, records that wait).

    A legal hold wins over any acceptance, however long ago it was given. A record whose
    batch accepted a narrower plan than the policy's current one is refused: nothing of it
    is erased until someone re-reviews. A subject with an open access request waits for its
    export, so the evidence is still there when it is built.
    """
    holds = held_profiles(session, [r.compliance_profile_id for r in rows], now=now)
    refused: dict[int, str] = {}
    held: list[int] = []
    for r in rows:
        if r.compliance_profile_id in holds:
            refused[r.id] = (
                f"on legal hold (hold {holds[r.compliance_profile_id]}): not erased; "
                "it is applied once the hold is lifted"
            )
            held.append(r.id)
        elif r.accepted_plan_hash is not None:
            accepted = accepted_plans.get(r.accepted_plan_hash)
            changes = (
                widening(accepted, current)
                if accepted is not None
                else ["the accepted plan is missing"]
            )
            if changes:
                refused[r.id] = (
                    f"policy changed after acceptance: {'; '.join(changes)}; re-review"
                )[:1000]
    exporting = awaiting_access_export(session, [r.subject_id for r in rows if r.id not in refused])
    waiting = {r.id for r in rows if r.id not in refused and r.subject_id in exporting}
    return refused, held, waiting


def _finish_chunk(
    session: Session,
    bucket: str,
    applied: list[int],
    errors: dict[int, str],
    rows: dict[str, int],
    *,
    actor: str,
    now: datetime,
    held: Sequence[int] = (),
    plan: str | None = None,
    blocked: Mapping[int, str] | None = None,
) -> None:
    marked = 0
    if applied:
        marked = rows_changed(
            session.execute(
                update(DeletionRecord)
                .where(DeletionRecord.id.in_(applied), DeletionRecord.deletion_applied_at.is_(None))
                .values(
                    deletion_applied_at=now,
                    deletion_error=None,
                    applied_plan_hash=plan,
                    updated_at=now,
                )
            )
        )
    blocked = blocked or {}
    for rid, message in errors.items():
        session.execute(
            update(DeletionRecord)
            .where(DeletionRecord.id == rid)
            .values(
                deletion_error=message,
                blocked_plan_hash=plan if rid in blocked else None,
                updated_at=now,
            )
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
            "held_record_ids": sorted(held),
            **({"blocked_record_ids": sorted(blocked)} if blocked else {}),
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
