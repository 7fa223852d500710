"""The request desk: one request, one view; internal notes; support's "Export now".

``request_detail`` gathers what a person needs to act on one request (deadline, identity
check, timeline from the audit trail, notes, notices) and the actions *their* roles allow
in its current state, so the page only renders and the rules live here, testable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from compliance.audit.texts import readable_all
from compliance.dsar.deadlines import days_left, effective_due_at
from compliance.dsar.decisions import approval_refusal
from compliance.dsar.exports import build_access_export
from compliance.dsar.objections import never_refused
from compliance.dsar.processing import delivery_off, export_ready, store_failed
from compliance.dsar.requests import (
    OPEN_STATUSES,
    audit_request,
    fail_request,
    get_dsar,
    has_finished_export,
    next_actions,
    requests_by_reference,
    with_article,
)
from compliance.errors import ComplianceError, Conflict, InvalidInput
from compliance.free_text import free_text
from compliance.logs import log_event
from compliance.policy.datamap import DataMap
from compliance.policy.model import Policy
from compliance.roles import COMPLIANCE_OFFICER, SUPPORT, Identity, require
from compliance.storage import STORE_FAULTS, export_store
from compliance.store.models import AuditEvent, DsarNote, DsarNotice, DsarRequest, utcnow
from compliance.store.states import EXPORT_KINDS, DsarKind, DsarStatus
from compliance.systems.payloads import (
    CorrectionView,
    Period,
    corrections_of,
    period_of,
    restriction_of,
)
from compliance.systems.tasks import tasks_of_request

NOT_RECORDED = "identity check not recorded"

# What each audited action reads as on the timeline.
ACTION_LABELS = {
    "dsar.submitted": "Logged",
    "dsar.approved": "Approved",
    "dsar.accepted_by_law": "Accepted: an objection to direct marketing is never refused",
    "dsar.suppression_recorded": "Suppression recorded",
    "dsar.restriction_placed": "Restriction of processing in force (a hold on the subject)",
    "dsar.restriction_lifted": "Restriction lifted, after the subject was told",
    "dsar.rectified": "Corrections applied to a table",
    "dsar.rejected": "Rejected",
    "dsar.extended": "Deadline extended",
    "dsar.retried": "Put back in the queue",
    "dsar.export_started": "Export started",
    "dsar.export_ready": "Export built, ready to send",
    "dsar.completed": "Completed",
    "dsar.failed": "Failed",
    "dsar.attempt_failed": "Attempt failed, will retry",
    "dsar.erasure_scheduled": "Erasure accepted under the approval, for apply-deletions",
    "dsar.export_downloaded": "Export downloaded by staff",
    "dsar.delivery_created": "Link and code sent to the subject",
    "dsar.delivery_failed": "Link could not be sent",
    "dsar.delivery_wrong_code": "Wrong download code entered",
    "dsar.delivery_locked": "Download link locked (too many wrong codes)",
    "dsar.delivery_downloaded": "Subject downloaded the export",
    "dsar.note_added": "Internal note added",
    "dsar.notice_sent": "Notice sent to the subject",
    "dsar.notice_failed": "Notice could not be sent",
}


@dataclass(frozen=True)
class TimelineEntry:
    occurred_at: datetime
    actor: str
    action: str
    label: str
    details: dict[str, Any]


@dataclass(frozen=True)
class Note:
    author: str
    created_at: datetime
    body: str


@dataclass(frozen=True)
class NoticeInfo:
    id: int
    kind: str
    status: str
    created_at: datetime
    sent_at: datetime | None
    attempts: int
    last_error: str | None


@dataclass(frozen=True)
class SystemTaskInfo:
    """Where one system stands on this request: it is done only when every system says so."""

    system: str
    kind: str
    status: str
    attempts: int
    last_error: str | None
    done_at: datetime | None
    done_by: str | None
    action: str = ""  # what the system was asked: the request's kind, or a restriction's end


@dataclass(frozen=True)
class RequestDetail:
    reference: str
    kind: str
    status: str
    scope: str | None  # an objection's
    subject_id: str
    subject_email: str | None
    requested_by: str
    requested_at: datetime
    channel: str | None
    jurisdiction: str
    due_at: datetime
    latest_due_at: datetime  # the latest an extension may reach under its jurisdiction
    days_left: int | None  # None once the request is closed
    overdue: bool
    extension_reason: str | None
    identity: str  # "method: note", or NOT_RECORDED
    reviewed_by: str | None
    reviewed_reason: str | None
    completed_at: datetime | None
    export_available: bool
    export_expires_at: datetime | None
    last_error: str | None
    attempts: int
    actions: tuple[str, ...]
    waiting_for: str | None  # why an expected action is not offered yet, in plain words
    timeline: list[TimelineEntry]
    notes: list[Note]
    notices: list[NoticeInfo]
    systems: list[SystemTaskInfo]
    restriction: Period | None = None  # a restriction request's hold, once placed
    corrections: tuple[CorrectionView, ...] = ()  # a rectification's


def identity_text(request: DsarRequest) -> str:
    method = request.identity_method
    note = (request.identity_check or "").strip()
    if not method and not note:
        return NOT_RECORDED
    if not method:
        return f"{NOT_RECORDED} as a method; note: {note}"
    return f"{method.replace('_', ' ')}: {note}" if note else method.replace("_", " ")


def export_state(
    request: DsarRequest, policy: Policy, now: datetime
) -> tuple[bool, datetime | None]:
    """Whether the export can still be handed over, and until when (exports expire)."""
    built = request.exported_at or request.completed_at
    if not has_finished_export(request) or built is None:
        return False, None
    expires = built + timedelta(days=policy.dsar_export_days)
    return bool(request.export_path) and now < expires and _kept(policy, request), expires


def _kept(policy: Policy, request: DsarRequest) -> bool:
    """Whether the store still holds the export; when it cannot say (it does not answer),
    the buttons stay, and pressing one says why it fails."""
    try:
        return export_store(policy).exists(request.export_path or "")
    except STORE_FAULTS:
        return True


def _exportable(request: DsarRequest, policy: Policy) -> bool:
    if request.kind not in EXPORT_KINDS:
        return False
    return request.status == DsarStatus.APPROVED or (
        request.status == DsarStatus.PENDING and not policy.dsar.access_review
    )


def available_actions(
    request: DsarRequest,
    policy: Policy,
    roles: Iterable[str],
    now: datetime,
    *,
    viewer: str | None = None,
) -> tuple[tuple[str, ...], str | None]:
    """The actions the viewer's roles allow in the request's state, and what it waits for.

    What the state allows is ``next_actions``, the one definition; this adds who is looking
    (``viewer``, their email: four eyes is ``approval_refusal``, the rule the review refuses
    by), the policy's export rule and whether the export's file is still there.
    """
    roles = set(roles)
    officer, support = COMPLIANCE_OFFICER in roles, SUPPORT in roles
    actions: list[str] = []
    waiting: str | None = None
    if not (officer or support):
        return (), None
    may = next_actions(request)
    actions.append("note")
    own = approval_refusal(request, viewer, four_eyes=policy.review.four_eyes) is not None
    if officer and may.can_review:
        actions += [] if own else ["approve"]
        actions += [] if never_refused(request) else ["reject"]
    if officer and may.can_extend:
        actions.append("extend")
    if officer and may.can_retry:
        actions.append("retry")
    if _exportable(request, policy):
        actions.append("export")
    elif may.can_review and own:
        waiting = "you logged this request, so another compliance officer approves it (four eyes)"
    elif request.kind in EXPORT_KINDS and may.can_review:
        waiting = "waiting for approval by a compliance officer"
    if request.status == DsarStatus.PROCESSING:
        waiting = "being processed"
    if request.status == DsarStatus.READY:
        waiting = "the export is ready; the subject has not been sent the link yet" + (
            " (the next process-dsar-requests run sends it)" if delivery_off(policy) is None else ""
        )
    available, _ = export_state(request, policy, now)
    if available:
        actions += ["send", "download"]
    elif may.can_download:
        waiting = "the export has expired or was removed; it can no longer be sent"
    if request.subject_email:
        actions.append("notice")
    return tuple(actions), waiting


@dataclass(frozen=True)
class ReviewCandidate:
    """A pending request in a bulk decision: the identity evidence the approver relies on,
    whether this viewer may approve it (four eyes, ``approval_refusal``) and whether anyone
    may reject it (not an objection to direct marketing: ``objections.never_refused``), by
    the rules the review itself refuses by."""

    reference: str
    kind: str
    identity_method: str | None
    identity_note: str | None
    may_approve: bool
    may_reject: bool = True


def review_candidates(
    session: Session, policy: Policy, references: Iterable[str], *, viewer: str | None
) -> list[ReviewCandidate]:
    """The requests a bulk decision would act on, in the order given (unknown ones left out)."""
    wanted = list(references)
    found = {r.reference: r for r in requests_by_reference(session, wanted)}
    session.rollback()
    four_eyes = policy.review.four_eyes
    return [
        ReviewCandidate(
            r.reference,
            r.kind,
            r.identity_method,
            r.identity_check,
            approval_refusal(r, viewer, four_eyes=four_eyes) is None,
            not never_refused(r),
        )
        for r in (found[ref] for ref in wanted if ref in found)
    ]


def timeline(session: Session, reference: str) -> list[TimelineEntry]:
    events = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.target_type == "dsar_request", AuditEvent.target_id == reference)
        .order_by(AuditEvent.id)
    ).all()
    # A reason kept outside the chain reads as itself, or "[removed after erasure]".
    details = readable_all(session, [e.details or {} for e in events])
    return [
        TimelineEntry(
            occurred_at=e.occurred_at,
            actor=e.actor,
            action=e.action,
            label=ACTION_LABELS.get(e.action, e.action),
            details=shown,
        )
        for e, shown in zip(events, details, strict=True)
    ]


def request_detail(
    session: Session,
    policy: Policy,
    reference: str,
    *,
    roles: Iterable[str],
    viewer: str | None = None,
    now: datetime | None = None,
) -> RequestDetail:
    """One request as ``viewer`` (their email) with ``roles`` sees it, with their actions."""
    now = now or utcnow()
    request = get_dsar(session, reference)
    due = effective_due_at(request)
    is_open = request.status in OPEN_STATUSES
    available, expires = export_state(request, policy, now)
    actions, waiting = available_actions(request, policy, roles, now, viewer=viewer)
    restriction = _placed_restriction(session, request)
    if restriction is not None and restriction.end is None and COMPLIANCE_OFFICER in set(roles):
        actions += ("lift",)  # plan_lift_restriction holds the rule; this offers it
    notes = _notes(session, request)
    notices = _notices(session, request)
    return RequestDetail(
        reference=request.reference,
        kind=request.kind,
        status=request.status,
        scope=request.scope,
        subject_id=request.subject_id,
        subject_email=request.subject_email,
        requested_by=request.requested_by,
        requested_at=request.requested_at,
        channel=request.channel,
        jurisdiction=request.jurisdiction,
        due_at=due,
        latest_due_at=request.latest_due_at,
        days_left=days_left(due, now) if is_open else None,
        overdue=is_open and due < now,
        extension_reason=request.extension_reason,
        identity=identity_text(request),
        reviewed_by=request.reviewed_by,
        reviewed_reason=request.reviewed_reason,
        completed_at=request.completed_at,
        export_available=available,
        export_expires_at=expires,
        last_error=request.last_error,
        attempts=request.attempts,
        actions=actions,
        waiting_for=waiting,
        timeline=timeline(session, request.reference),
        notes=notes,
        notices=notices,
        systems=_systems(session, request),
        restriction=restriction,
        corrections=tuple(corrections_of(session, request.id)),
    )


def _placed_restriction(session: Session, request: DsarRequest) -> Period | None:
    """A restriction request's hold once placed; None for other kinds or before it is placed."""
    if request.kind == DsarKind.RESTRICTION and restriction_of(session, request.id) is not None:
        return period_of(session, request.id)
    return None


def _notes(session: Session, request: DsarRequest) -> list[Note]:
    """Staff's internal notes on the request, oldest first: never sent to the subject."""
    notes = session.scalars(
        select(DsarNote).where(DsarNote.dsar_request_id == request.id).order_by(DsarNote.id)
    )
    return [Note(n.author, n.created_at, n.body) for n in notes]


def _notices(session: Session, request: DsarRequest) -> list[NoticeInfo]:
    """What the subject was told, oldest first, with whether each notice went out."""
    notices = session.scalars(
        select(DsarNotice).where(DsarNotice.dsar_request_id == request.id).order_by(DsarNotice.id)
    )
    return [
        NoticeInfo(n.id, n.kind, n.status, n.created_at, n.sent_at, n.attempts, n.last_error)
        for n in notices
    ]


def _systems(session: Session, request: DsarRequest) -> list[SystemTaskInfo]:
    """Where each system stands: the request is done only when every system says so."""
    return [
        SystemTaskInfo(t.system, t.system_kind, t.status, t.attempts, t.last_error, t.done_at,
                       t.done_by, t.action)
        for t in tasks_of_request(session, request)
    ]  # fmt: skip


def add_note(session: Session, reference: str, *, author: Identity, body: str) -> Note:
    """An internal note (staff only, never sent); the audit trail records who and when."""
    by = require(author, SUPPORT, COMPLIANCE_OFFICER, to="add notes to DSAR requests")
    text = free_text(body, field="note")
    if text is None:
        raise InvalidInput("the note is empty")
    request = get_dsar(session, reference)
    note = DsarNote(dsar_request_id=request.id, author=by, body=text, created_at=utcnow())
    session.add(note)
    session.flush()
    # The text may name people; the chain keeps only that a note was added, and its id.
    audit_request(session, request, "dsar.note_added", by, {"note_id": note.id})
    session.commit()
    return Note(note.author, note.created_at, note.body)


# ---------------------------------------------------------------- export now


def start_export(
    session: Session, policy: Policy, reference: str, *, actor: Identity, execute: bool
) -> DsarRequest:
    """Claim an access request for an export right now (support's button), or refuse why not.

    The claim is one conditional UPDATE, so the cron's ``process-dsar-requests`` and a
    second click can never both build it. It is the job's claim, with the job's lease: if
    this dashboard process dies before the export is written, the request is processing
    with no export, and a scheduled run takes it over once ``CLAIM_LEASE`` has passed.
    """
    by = require(actor, SUPPORT, COMPLIANCE_OFFICER, to="export DSAR requests")
    request = get_dsar(session, reference)
    if request.kind not in EXPORT_KINDS:
        raise Conflict(
            f"{request.reference} is {with_article(request.kind)} request; only access and "
            "portability requests export"
        )
    if not _exportable(request, policy):
        if request.status == DsarStatus.PENDING:
            raise Conflict(f"{request.reference} is waiting for approval by a compliance officer")
        raise Conflict(f"{request.reference} is {request.status}; it cannot be exported now")
    if not execute:
        session.rollback()
        return request
    now = utcnow()
    claimed = session.execute(
        update(DsarRequest)
        .where(DsarRequest.id == request.id, DsarRequest.status == request.status)
        .values(status=DsarStatus.PROCESSING, processing_started_at=now, last_error=None)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        raise Conflict(f"{request.reference} was just taken by someone else; reload to see it")
    audit_request(
        session,
        request,
        "dsar.export_started",
        by,
        {"approved_by_policy": request.status == DsarStatus.PENDING},
    )
    session.commit()
    session.refresh(request)
    return request


def run_export(
    session: Session,
    datamap: DataMap,
    reference: str,
    *,
    actor: Identity,
    progress: Callable[[int, int, str], None] | None = None,
) -> DsarRequest:
    """Build the claimed request's export, ready to send; a failure is stored on it."""
    by = require(actor, SUPPORT, COMPLIANCE_OFFICER, to="export DSAR requests")
    request = get_dsar(session, reference)
    if request.status != DsarStatus.PROCESSING:
        raise Conflict(f"{request.reference} is {request.status}; start the export first")
    try:
        export = build_access_export(
            datamap,
            request.subject_id,
            reference=request.reference,
            store=export_store(datamap.policy),
            request=request,
            progress=progress,
        )
    except STORE_FAULTS as exc:
        session.rollback()  # the store failed, not the request: back in the queue
        store_failed(session, request, str(exc), by, requeue=True)
        session.commit()
        raise
    except (ComplianceError, OSError) as exc:
        session.rollback()
        fail_request(session, request, str(exc), by)
        session.commit()
        log_event("dsar.failed", reference=request.reference, error=type(exc).__name__)
        raise
    request.export_path = export.location
    request.export_bytes = export.bytes
    request.export_sha256 = export.sha256
    export_ready(session, request, by, utcnow())
    session.commit()
    return request
