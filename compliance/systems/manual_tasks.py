"""Manual tasks: a person does the step by hand and an officer confirms it with a note (and,
for access, the file), one at a time or in bulk; and a failed task put back in the queue."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    func,
    select,
)
from sqlalchemy.orm import Session

from compliance.errors import Conflict, InvalidInput
from compliance.free_text import free_text
from compliance.policy.systems import SystemKind
from compliance.roles import COMPLIANCE_OFFICER, Identity, require
from compliance.storage import ExportStore
from compliance.store.models import ErasureTask, utcnow
from compliance.store.sql import among_ids
from compliance.store.states import DsarKind, TaskStatus, move
from compliance.systems.tasks import (
    FINISHED,
    MAX_UPLOAD_BYTES,
    audit_task,
    finish_task,
    get_task,
    settle_owner,
)


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
    settle_owner(session, task, now)
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
    audit_task(
        session,
        task,
        "task.retried",
        actor=by,
        details={"system": task.system, "previous_error": previous},
    )
    session.commit()
    return task


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
        settle_owner(session, task, at)
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
