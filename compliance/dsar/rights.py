"""Requests answered by telling systems (``TOLD_KINDS``): objection, restriction, rectification.

Once approved, process-dsar-requests does the request's own step (record the suppression,
place the restriction), opens a task per webhook and manual system the policy's ``[dsar]
systems`` names (a rectification also one per SQL system it corrects, carried out at once,
and one for its corrections in words), sends the webhooks and completes the request when
every task is finished.
A request still waiting for a person or a late answer is looked at again by later runs
(``awaiting_systems``). A restriction outlives its request: it is lifted by an officer's
decision, after the subject was told (``lift_restriction``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, exists, or_, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from compliance.audit.texts import text_details
from compliance.dsar.notices import NoticeResult, send_lift_notice
from compliance.dsar.objections import record_suppression
from compliance.dsar.rectification import (
    FREE_TEXT,
    carry_out,
    corrections_of,
    plan_rectification,
)
from compliance.dsar.requests import audit_request, complete_request, get_dsar, with_article
from compliance.dsar.restrictions import place_restriction
from compliance.errors import ComplianceError, Conflict, InvalidInput, first_line
from compliance.free_text import free_text
from compliance.policy.datamap import DataMap
from compliance.policy.model import Policy
from compliance.policy.systems import SYSTEM_KINDS, SystemKind
from compliance.roles import COMPLIANCE_OFFICER, Identity, require
from compliance.store.models import DsarRequest, ErasureTask, LegalHold, utcnow
from compliance.store.queries import dsar_in
from compliance.store.sql import rows_changed
from compliance.store.states import TOLD_KINDS, DsarKind, DsarStatus, NoticeStatus, TaskStatus
from compliance.systems import tasks as system_tasks
from compliance.systems import webhook_tasks
from compliance.systems.payloads import RESTRICTION_END, restriction_of


def told_task_specs(
    session: Session, policy: Policy, request: DsarRequest
) -> list[system_tasks.TaskSpec]:
    """Every webhook and manual system requests reach gets a task of the request's kind; a
    rectification also each SQL system it corrects, and a person its corrections in words."""
    pending = TaskStatus.PENDING
    told = [
        system_tasks.TaskSpec(name, policy.systems[name].kind, pending)
        for name in policy.dsar_systems
    ]
    if request.kind != DsarKind.RECTIFICATION:
        return told
    asked = corrections_of(session, request.id)
    tables = [c.table for c in asked if c.table is not None]
    corrected = {policy.tables[t].system for t in tables if t in policy.tables}
    sql = [
        system_tasks.TaskSpec(n, SystemKind.SQL, pending) for n in policy.systems if n in corrected
    ]
    in_words = len(tables) < len(asked)
    words = [system_tasks.TaskSpec(FREE_TEXT, SystemKind.MANUAL, pending)] if in_words else []
    return [*sql, *told, *words]


def _own_step(
    session: Session, datamap: DataMap, request: DsarRequest, actor: str, now: datetime
) -> None:
    """What the desk itself does for the request before the systems are told (idempotent)."""
    if request.kind == DsarKind.OBJECTION:
        record_suppression(session, datamap.policy, request, actor=actor, now=now)
    elif request.kind == DsarKind.RESTRICTION:
        place_restriction(session, request, actor=actor, now=now)


def process_told(
    session: Session, datamap: DataMap, request: DsarRequest, actor: str, now: datetime
) -> bool:
    """Do the request's step, open and send its tasks; True when it is completed already."""
    policy = datamap.policy
    _own_step(session, datamap, request, actor, now)
    subject = policy.subject_payload(
        request.subject_type, request.subject_id, request.subject_email
    )
    specs = told_task_specs(session, policy, request)
    system_tasks.ensure_request_tasks(
        session, policy, request, subject=subject, now=now, specs=specs
    )
    session.commit()  # the tasks' idempotency keys exist before any request leaves
    return settle_told(session, datamap, request, actor, now)


def settle_told(
    session: Session, datamap: DataMap, request: DsarRequest, actor: str, now: datetime
) -> bool:
    """Carry out (or retry) a rectification's UPDATEs, ask the webhooks again, and complete
    the request once every task is finished."""
    if request.kind == DsarKind.RECTIFICATION:
        _rectify(session, datamap, request, actor, now)
    webhook_tasks.run_webhook_tasks(
        session, datamap.policy, actor=actor, now=now, request_ids=[request.id]
    )
    if request.status != DsarStatus.PROCESSING:  # completed: telling its restriction's end
        return False
    if not system_tasks.request_tasks_finished(session, request.id, kinds=SYSTEM_KINDS):
        return False
    complete_request(session, request, actor, now)
    return True


def _rectify(
    session: Session, datamap: DataMap, request: DsarRequest, actor: str, now: datetime
) -> None:
    """Each SQL system's UPDATEs, as previewed, then its task done (committed per system).

    The application commits first: a run killed in between applies the same values again,
    which changes nothing more. A failure fails the task with why; the next run retries it.
    """
    todo = [
        t
        for t in system_tasks.tasks_of_request(session, request)
        if t.system_kind == SystemKind.SQL and t.status not in system_tasks.FINISHED
    ]
    if not todo:
        return
    plan = plan_rectification(session, datamap, request)
    for task in todo:
        try:
            changed = carry_out(datamap, plan, task.system)
        except (ComplianceError, SQLAlchemyError) as exc:
            session.rollback()
            system_tasks.fail_task(session, task, first_line(exc), actor=actor, now=now)
            session.commit()
            continue
        system_tasks.finish_task(session, task, actor=actor, now=now)
        for change in (c for c in plan.changes if c.system == task.system):
            audit_request(
                session,
                request,
                "dsar.rectified",
                actor,
                {
                    "system": change.system,
                    "table": change.table,
                    "columns": sorted(change.values),
                    "rows": changed[change.table],
                },
            )
        session.commit()


def awaiting_systems(now: datetime, lease: timedelta) -> ColumnElement[bool]:
    """Told requests still waiting for a system, and completed restrictions whose end a
    system has not confirmed, not looked at within ``lease``."""
    ending = exists().where(
        ErasureTask.dsar_request_id == DsarRequest.id,
        ErasureTask.action == RESTRICTION_END,
        ErasureTask.status.in_(system_tasks.OPEN),
    )
    return and_(
        DsarRequest.kind.in_(TOLD_KINDS),
        or_(
            and_(
                dsar_in(DsarStatus.PROCESSING),
                exists().where(ErasureTask.dsar_request_id == DsarRequest.id),
            ),
            and_(dsar_in(DsarStatus.COMPLETED), ending),
        ),
        DsarRequest.processing_started_at <= now - lease,
    )


# ---------------------------------------------------------------- lifting a restriction


@dataclass(frozen=True)
class LiftPlan:
    """Lifting a restriction: which hold, why, by whom; the subject is told first."""

    reference: str
    hold_id: int
    subject_id: str
    reason: str
    by: Identity


def plan_lift_restriction(
    session: Session, reference: str, *, reason: str | None, by: Identity
) -> LiftPlan:
    """Check that the request's restriction is in force and can be lifted; changes nothing.

    Only a compliance officer lifts it, with a reason the subject will read; and only when
    the subject can be told first (Art. 18(3)): a request without an email is refused.
    """
    require(by, COMPLIANCE_OFFICER, to="lift restrictions of processing")
    why = free_text(reason, field="reason")
    if why is None:
        raise InvalidInput(
            "lifting a restriction needs a reason (the subject is told it)", field="reason"
        )
    request = get_dsar(session, reference)
    if request.kind != DsarKind.RESTRICTION:
        raise Conflict(
            f"{request.reference} is {with_article(request.kind)} request, not a restriction"
        )
    hold = restriction_of(session, request.id)
    session.rollback()
    if hold is None:
        raise Conflict(f"{request.reference} has no restriction in force yet ({request.status})")
    if hold.lifted_at is not None:
        when = hold.lifted_at.strftime("%Y-%m-%d %H:%M UTC")
        raise Conflict(
            f"the restriction of {request.reference} was lifted by {hold.lifted_by} at {when}"
        )
    if not request.subject_email:
        raise Conflict(
            f"{request.reference} has no email address: the subject must be told before the "
            "restriction is lifted (GDPR Art. 18(3))"
        )
    return LiftPlan(request.reference, hold.id, request.subject_id, why, by)


def lift_restriction(
    session: Session,
    policy: Policy,
    plan: LiftPlan,
    *,
    env: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> NoticeResult:
    """Tell the subject, then lift: the hold ends only once the mail server took the notice;
    then every webhook and manual system is told the end (a task each, action
    ``restriction_end``; webhooks get a ``restriction`` call with its end).

    A notice that cannot be sent is kept (failed, on the request) and the restriction stays,
    with a Conflict saying so. The reason is kept outside the audit chain (its keyed hash
    is in the event), tied to the subject and forgotten with them.
    """
    told = send_lift_notice(
        session, policy, plan.reference, actor=plan.by, reason=plan.reason, env=env
    )
    if told.status != NoticeStatus.SENT:
        raise Conflict(
            f"the subject of {plan.reference} could not be told ({told.error}); the restriction "
            "stays in force. Lift it again once mail goes out."
        )
    now = now or utcnow()
    lifted = session.execute(
        update(LegalHold)
        .where(LegalHold.id == plan.hold_id, LegalHold.lifted_at.is_(None))
        .values(lifted_at=now, lifted_by=plan.by.email, lifted_reason=plan.reason)
    )
    if rows_changed(lifted) != 1:
        session.rollback()
        raise Conflict(f"the restriction of {plan.reference} was lifted meanwhile")
    request = get_dsar(session, plan.reference)
    held = (request.subject_type, plan.subject_id)
    reason = text_details(session, "reason", plan.reason, subjects=[held])
    details = {"hold_id": plan.hold_id, "notice_id": told.notice_id, **reason}
    audit_request(session, request, "dsar.restriction_lifted", plan.by.email, details)
    session.commit()
    # Then every system that was told the start is told the end (retried by later runs).
    subject = policy.subject_payload(
        request.subject_type, request.subject_id, request.subject_email
    )
    specs = told_task_specs(session, policy, request)
    system_tasks.ensure_request_tasks(
        session, policy, request, subject=subject, now=now, specs=specs, action=RESTRICTION_END
    )
    session.commit()
    webhook_tasks.run_webhook_tasks(
        session, policy, actor=plan.by.email, now=now, request_ids=[request.id]
    )
    return told
