"""Expired exports and links cleaned up: what the store holds past its time, planned first
(``plan_cleanup``) and then removed (``carry_out_cleanup``), by ``cleanup-expired-exports``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select, union_all, update
from sqlalchemy.orm import Session

from compliance.audit.chain import record_event
from compliance.policy.model import Policy
from compliance.storage import Area, ExportStore, export_store
from compliance.store.models import DsarDelivery, DsarRequest, ErasureTask, UserExport, utcnow
from compliance.store.queries import dsar_open


@dataclass(frozen=True)
class CleanupResult:
    exports: int
    deliveries: int
    references: list[str]
    executed: bool
    temp_files: int = 0  # what killed writes left behind (a temp file, an unnamed object)
    user_exports: int = 0  # export-user-data files older than the retention
    task_files: int = 0  # systems' parts of access exports (a webhook's data, an upload)


@dataclass(frozen=True)
class CleanupPlan:
    """What a cleanup removes, read once: the dry run counts it, the run removes exactly it."""

    expired: tuple[tuple[int, str, str], ...]  # (request id, reference, export location)
    deliveries: tuple[int, ...]
    temp_files: tuple[str, ...]
    user_exports: tuple[str, ...]
    older_than_days: int
    task_files: tuple[tuple[int, str], ...] = ()  # (task id, location)

    @property
    def references(self) -> list[str]:
        return sorted(reference for _, reference, _ in self.expired)

    def result(self, *, executed: bool) -> CleanupResult:
        return CleanupResult(
            len(self.expired), len(self.deliveries), self.references, executed,
            len(self.temp_files), len(self.user_exports), len(self.task_files),
        )  # fmt: skip


def stored_locations(session: Session) -> set[str]:
    """Every file location a row names: requests' exports, systems' parts, support exports."""
    rows = session.execute(
        union_all(
            select(DsarRequest.export_path).where(DsarRequest.export_path.is_not(None)),
            select(ErasureTask.file_path).where(ErasureTask.file_path.is_not(None)),
            select(UserExport.location),
        )
    ).scalars()
    return set(rows)


def plan_cleanup(
    session: Session,
    policy: Policy,
    *,
    now: datetime | None = None,
    store: ExportStore | None = None,
) -> CleanupPlan:
    """Exports, deliveries and stray files older than ``[retention.dsar_exports] days``."""
    now = now or utcnow()
    store = store or export_store(policy)
    cutoff = now - timedelta(days=policy.dsar_export_days)
    expired = session.execute(
        select(DsarRequest.id, DsarRequest.reference, DsarRequest.export_path).where(
            DsarRequest.export_path.is_not(None),
            # Sent or not: personal data is not kept longer because nobody sent the link.
            func.coalesce(DsarRequest.exported_at, DsarRequest.completed_at) <= cutoff,
        )
    ).all()
    old_deliveries = session.scalars(
        select(DsarDelivery.id).where(DsarDelivery.created_at <= cutoff)
    )
    # A system's part is an input of its ZIP: it goes with the ZIP, or once its request is
    # closed (never while a request still waits to be built from it).
    parts = session.execute(
        select(ErasureTask.id, ErasureTask.file_path)
        .join(DsarRequest, DsarRequest.id == ErasureTask.dsar_request_id)
        .where(
            ErasureTask.file_path.is_not(None),
            ErasureTask.done_at <= cutoff,
            or_(~dsar_open, func.coalesce(DsarRequest.exported_at, DsarRequest.completed_at)
                <= cutoff),
        )
    ).all()  # fmt: skip
    # Support's direct exports: by their rows, and by name in a folder (those written before
    # the rows existed); in a bucket by when they were written.
    user_exports = set(
        session.scalars(select(UserExport.location).where(UserExport.created_at <= cutoff))
    )
    user_exports |= {f.location for f in store.listing(Area.SUPPORT) if f.written_at <= cutoff}
    abandoned = store.abandoned(now, stored_locations(session))
    return CleanupPlan(
        tuple((r.id, r.reference, r.export_path) for r in expired), tuple(old_deliveries),
        tuple(abandoned), tuple(sorted(user_exports - set(abandoned))), policy.dsar_export_days,
        tuple((t.id, t.file_path) for t in parts),
    )  # fmt: skip


def cleanup_expired_exports(
    session: Session,
    policy: Policy,
    *,
    actor: str,
    execute: bool,
    now: datetime | None = None,
) -> CleanupResult:
    """Delete export files and deliveries older than ``[retention.dsar_exports] days``.

    The request keeps its size and sha256 as evidence; only the personal data goes.
    """
    store = export_store(policy)
    plan = plan_cleanup(session, policy, now=now, store=store)
    if not execute:
        session.rollback()
        return plan.result(executed=False)
    return carry_out_cleanup(session, store, plan, actor=actor)


def carry_out_cleanup(
    session: Session, store: ExportStore, plan: CleanupPlan, *, actor: str
) -> CleanupResult:
    """Files first (every version, in a bucket), then the rows that name them, and one audit
    event with the counts. A store that fails stops it before any row changes: the rerun
    finds the same plan, less what was already deleted."""
    for _, _, location in plan.expired:
        store.delete(location)
    for _, location in plan.task_files:
        store.delete(location)
    for location in [*plan.temp_files, *plan.user_exports]:
        store.delete(location)
    if plan.expired:
        session.execute(
            update(DsarRequest)
            .where(DsarRequest.id.in_([request_id for request_id, _, _ in plan.expired]))
            .values(export_path=None)
        )
    if plan.task_files:
        session.execute(
            update(ErasureTask)
            .where(ErasureTask.id.in_([task_id for task_id, _ in plan.task_files]))
            .values(file_path=None, file_name=None)
        )
    if plan.user_exports:
        session.execute(delete(UserExport).where(UserExport.location.in_(plan.user_exports)))
    if plan.deliveries:
        session.execute(delete(DsarDelivery).where(DsarDelivery.id.in_(plan.deliveries)))
    if plan.expired or plan.deliveries or plan.temp_files or plan.user_exports or plan.task_files:
        record_event(
            session,
            actor=actor,
            action="dsar.exports_cleaned",
            target_type="dsar_exports",
            target_id=None,
            details={
                "exports": len(plan.expired),
                "deliveries": len(plan.deliveries),
                "references": plan.references[:1000],
                "older_than_days": plan.older_than_days,
                "temp_files": len(plan.temp_files),
                "user_exports": len(plan.user_exports),
                "task_files": len(plan.task_files),
            },
        )
    session.commit()
    return plan.result(executed=True)
