"""DSAR requests: intake, review, extension, retry and the staff's export download.

A data subject asks for a copy of their data (``access``), its erasure (``erasure``), or
another right of GDPR Art. 16-21 (``DsarKind``; what each adds is in ``objections``,
``restrictions``, ``rectification``; portability is an access export of what they provided).
Support logs the request and a compliance officer approves it; ``dsar.processing`` then
does the work before the deadline of GDPR Art. 12(3) (``dsar.deadlines``). The public
functions commit their change together with its audit event, so a page or a host
application needs no transaction logic.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, MetaData, Table, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from compliance.audit.chain import record_event
from compliance.audit.texts import text_details
from compliance.deletion.plans import plan_document, plan_hash, store_plan
from compliance.dsar.deadlines import due_date, effective_due_at, jurisdiction_for, latest_due_date
from compliance.dsar.objections import BY_LAW, Scope, check_scope, never_refused
from compliance.dsar.rectification import (
    CheckedCorrection,
    Correction,
    check_corrections,
    store_corrections,
)
from compliance.dsar.restrictions import refuse_if_erased
from compliance.emails import check_email
from compliance.errors import (
    ConfigError,
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    quoted,
)
from compliance.free_text import free_text
from compliance.logs import log_event
from compliance.policy.datamap import normalise_subject_key
from compliance.policy.jurisdictions import MAX_PERIOD_DAYS, MAX_PERIOD_MONTHS, period_text
from compliance.policy.model import DSAR_ERASURE_BUCKET, Policy
from compliance.roles import API_INTAKE, COMPLIANCE_OFFICER, SUPPORT, Identity, require
from compliance.storage import ExportStore, export_store
from compliance.store.models import DsarRequest, utcnow
from compliance.store.queries import dsar_open, first_or_not_found
from compliance.store.states import (
    EXPORT_KINDS,
    OPEN_DSAR_STATUSES,
    DsarKind,
    DsarStatus,
    can_move,
    move,
)

KINDS = tuple(k.value for k in DsarKind)
OPEN_STATUSES = tuple(s.value for s in OPEN_DSAR_STATUSES)
STATUSES = tuple(s.value for s in DsarStatus)
_REFERENCE = re.compile(r"^DSAR-\d{4}-\d{6,}$")
# A failed attempt waits 5, then 10, then 20 minutes...: a database restart, a full disk or
# a mail server's bad hour gets time to pass ([dsar] max_attempts in all).
BACKOFF_BASE = timedelta(minutes=5)


def with_article(word: str) -> str:
    """``an erasure``, ``an access``, ``a refusal``: the article a kind's name takes."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


def backoff(attempt: int, base: timedelta = BACKOFF_BASE) -> timedelta:
    """How long after its ``attempt``-th failure a request is tried again: base, 2x, 4x..."""
    return base * (2 ** (attempt - 1))


# ---------------------------------------------------------------- intake


def _subjects_table(policy: Policy, app_engine: Engine) -> Table:
    meta = MetaData()
    meta.reflect(bind=app_engine, only=[policy.subjects.table])
    return meta.tables[policy.subjects.table]


def resolve_subject(
    policy: Policy, app_engine: Engine, *, subject_id: str | None, email: str | None
) -> tuple[str, str | None]:
    """The subject's key and email in the application database, found by id or by email."""
    if (subject_id is None) == (email is None):
        raise InvalidInput("give exactly one of a subject id or an email")
    subjects = policy.subjects
    table = _subjects_table(policy, app_engine)
    key_col = table.c[subjects.key]
    email_col = table.c[subjects.email] if subjects.email else None
    columns = [key_col] + ([email_col] if email_col is not None else [])
    if email is not None:
        address = check_email(email, "email")
        if email_col is None:
            raise InvalidInput("[subjects] has no email column, so give the subject id")
        query = select(*columns).where(func.lower(email_col) == address)
        what = f"with email '{address}'"
    else:
        subject_id, value = normalise_subject_key(key_col, subject_id)
        query = select(*columns).where(key_col == value)
        what = f"with id '{subject_id}'"
    with app_engine.connect() as conn:
        rows = conn.execute(query.limit(2)).all()
    if not rows:
        raise NotFound(f"no data subject {what} in {subjects.table}")
    if len(rows) > 1:
        raise Conflict(f"more than one data subject {what}; give the subject id")
    row = rows[0]
    return str(row[0]), (row[1] if email_col is not None else None)


def subject_country(policy: Policy, app_engine: Engine, subject_key: str) -> str | None:
    """The subject's ``[subjects] jurisdiction_column`` value, which picks its jurisdiction."""
    column = policy.subjects.jurisdiction_column
    if column is None:
        return None
    table = _subjects_table(policy, app_engine)
    if column not in table.c:  # jobs that only log a request do not check the whole policy
        raise ConfigError(
            f"subjects.jurisdiction_column: table '{table.name}' has no column '{column}'"
        )
    _, value = normalise_subject_key(table.c[policy.subjects.key], subject_key)
    with app_engine.connect() as conn:
        found = conn.scalar(select(table.c[column]).where(table.c[policy.subjects.key] == value))
    return None if found is None else str(found)


def open_request(session: Session, subject_id: str, kind: str) -> DsarRequest | None:
    """The subject's open request of this kind, if any: at most one is open at a time."""
    return session.scalars(
        select(DsarRequest).where(
            DsarRequest.subject_id == subject_id,
            DsarRequest.kind == kind,
            dsar_open,
        )
    ).first()


def audit_request(
    session: Session, request: DsarRequest, action: str, actor: str, details: dict[str, Any]
) -> None:
    """Every step of a request's life is audited the same way: on the request, by reference."""
    record_event(
        session,
        actor=actor,
        action=action,
        target_type="dsar_request",
        target_id=request.reference,
        details=details,
    )


_API_ACTOR = re.compile(r"^api:[a-z0-9][a-z0-9._-]{0,62}$")


def check_requester(requested_by: str) -> str:
    """Staff are named by email; a host application by its API key's name (``api:NAME``)."""
    value = (requested_by or "").strip()
    if _API_ACTOR.match(value):
        return value
    return check_email(value, "requested_by")


def check_identity_method(
    policy: Policy, method: str | None, note: str | None, *, required: bool
) -> str | None:
    """The method, if one of the policy's; 'other' needs a note saying what was done.

    ``note`` is as ``free_text`` left it (trimmed, None when blank).
    """
    method = (method or "").strip() or None
    methods = policy.dsar.identity_methods
    if method is None:
        if required:
            raise InvalidInput(
                f"say how the requester's identity was checked (one of {', '.join(methods)})"
            )
        return None
    if method not in methods:
        raise InvalidInput(
            f"identity check method must be one of {', '.join(methods)}, got '{method}'"
        )
    if method == "other" and not note:
        raise InvalidInput("identity check 'other' needs a note saying how it was checked")
    return method


@dataclass(frozen=True)
class Submission:
    request: DsarRequest
    created: bool  # False: an open request of the same kind already existed


def submit_dsar(
    session: Session, policy: Policy, app_engine: Engine, *, execute: bool, **kwargs: Any
) -> DsarRequest:
    """Log a request; a duplicate open request returns the existing one (see ``submit``)."""
    return submit(session, policy, app_engine, execute=execute, **kwargs).request


def submit(
    session: Session,
    policy: Policy,
    app_engine: Engine,
    *,
    kind: str,
    subject_id: str | None = None,
    email: str | None = None,
    jurisdiction: str | None = None,
    requested_by: Identity,
    identity_check: str | None = None,
    identity_method: str | None = None,
    require_identity: bool = False,
    channel: str = "cli",
    client_ip: str | None = None,
    user_agent: str | None = None,
    now: datetime | None = None,
    scope: str | None = None,
    corrections: Sequence[Correction] = (),
    execute: bool,
) -> Submission:
    """Log a request (committed, audited); a duplicate open request returns the existing one.

    How identity was checked is a method from ``[dsar] identity_methods`` plus a note; the
    dashboard and the API require it (``require_identity``), scripted back-office use may
    leave it out and the approver then sees that it was not recorded. The request falls under
    ``jurisdiction`` if given, else as ``deadlines.jurisdiction_for`` picks it. With
    ``execute=False`` nothing is written and an unsaved request (reference None) shows what
    would be logged. An objection names its ``scope``; one to direct marketing logged with
    an identity check is accepted at once (Art. 21(3), ``objections.never_refused``). A
    rectification lists its ``corrections`` (``rectification.check_corrections``).
    """
    by = _check_intake(policy, kind, requested_by, jurisdiction)
    objection = check_scope(kind, scope)
    checked = check_corrections(policy, app_engine, kind, corrections)
    identity = _check_identity(policy, identity_check, identity_method, require_identity)
    key, subject_email = resolve_subject(policy, app_engine, subject_id=subject_id, email=email)
    refuse_if_erased(session, policy, kind, key)
    now = now or utcnow()
    existing = open_request(session, key, kind)
    if existing is not None:
        return Submission(existing, False)
    request = _new_request(
        policy,
        app_engine,
        kind=kind,
        subject=(key, subject_email),
        jurisdiction=jurisdiction,
        requested_by=by,
        requested_at=now,
        identity=identity,
        channel=channel,
        client_ip=client_ip,
        user_agent=user_agent,
        scope=objection,
    )
    if not execute:
        return _dry_run(session, request)
    return _save_submission(session, request, checked)


def _check_intake(
    policy: Policy, kind: str, requested_by: Identity, jurisdiction: str | None
) -> str:
    """Refuse a bad kind, requester or law, or a portability of nothing, before any lookup."""
    if kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}, got {quoted(kind)}")
    by = check_requester(
        require(requested_by, SUPPORT, COMPLIANCE_OFFICER, API_INTAKE, to="log DSAR requests")
    )
    if jurisdiction is not None:
        policy.jurisdiction(jurisdiction)  # an unknown name is refused before any lookup
    if kind == DsarKind.PORTABILITY and not any(t.portable for t in policy.tables.values()):
        raise ConfigError(
            "no table of the data map is marked portable ([tables.NAME] portable = true): "
            "a portability request would export nothing"
        )
    return by


def _check_identity(
    policy: Policy, identity_check: str | None, identity_method: str | None, required: bool
) -> tuple[str | None, str | None]:
    """The identity evidence (note, method), refused like all input before any lookup."""
    note = free_text(identity_check, field="identity_note")  # before any lookup, as all input
    return note, check_identity_method(policy, identity_method, note, required=required)


def _new_request(
    policy: Policy,
    app_engine: Engine,
    *,
    kind: str,
    subject: tuple[str, str | None],
    jurisdiction: str | None,
    requested_by: str,
    requested_at: datetime,
    identity: tuple[str | None, str | None],
    channel: str,
    client_ip: str | None,
    user_agent: str | None,
    scope: Scope | None,
) -> DsarRequest:
    """The unsaved request, on the clock of the law it falls under (chosen, else by country)."""
    key, subject_email = subject
    note, identity_method = identity
    country = None if jurisdiction else subject_country(policy, app_engine, key)
    law = jurisdiction_for(policy, chosen=jurisdiction, country=country)
    return DsarRequest(
        reference=f"tmp-{uuid.uuid4().hex[:28]}",
        kind=kind,
        subject_id=key,
        subject_email=subject_email,
        status=DsarStatus.PENDING,
        requested_by=requested_by,
        requested_at=requested_at,
        identity_check=note,
        identity_method=identity_method,
        channel=channel,
        client_ip=(client_ip or "")[:64] or None,
        user_agent=(user_agent or "")[:512] or None,
        jurisdiction=law.name,
        due_at=due_date(requested_at, law),
        latest_due_at=latest_due_date(requested_at, law),
        extension_months=0,
        extension_days=0,
        attempts=0,
        scope=scope,
    )


def _dry_run(session: Session, request: DsarRequest) -> Submission:
    """A dry run shows what would be logged: the request unsaved, without a reference."""
    request.reference = None  # type: ignore[assignment]
    session.rollback()
    return Submission(request, True)


def _save_submission(
    session: Session, request: DsarRequest, corrections: Sequence[CheckedCorrection] = ()
) -> Submission:
    """Save the very request the dry run would show, unless a concurrent one won the race."""
    key, kind = request.subject_id, request.kind
    try:
        with session.begin_nested():
            session.add(request)
            session.flush()  # the row id makes the reference unique without a counter table
            request.reference = f"DSAR-{request.requested_at.year}-{request.id:06d}"
            session.flush()
    except IntegrityError:
        # Another submission for the same subject and kind won the race.
        existing = open_request(session, key, kind)
        if existing is None:
            raise
        return Submission(existing, False)
    store_corrections(session, request, corrections)
    audit_request(
        session,
        request,
        "dsar.submitted",
        request.requested_by,
        {
            "kind": request.kind,
            "jurisdiction": request.jurisdiction,
            "due_at": request.due_at.isoformat(),
            "channel": request.channel,
            "identity_method": request.identity_method,
        }
        | ({"scope": request.scope} if request.scope else {})
        | ({"corrections": len(corrections)} if corrections else {}),
    )
    if never_refused(request) and request.identity_method:
        _accept_by_law(session, request)
    session.commit()
    log_event(
        "dsar.submitted", reference=request.reference, kind=request.kind, channel=request.channel
    )
    return Submission(request, True)


def _accept_by_law(session: Session, request: DsarRequest) -> None:
    """An objection to direct marketing with a checked identity needs no officer: accepted."""
    move(request, DsarStatus.APPROVED)
    request.reviewed_at = request.requested_at
    audit_request(
        session, request, "dsar.accepted_by_law", request.requested_by,
        {"kind": request.kind, "scope": request.scope, "why": BY_LAW},
    )  # fmt: skip


def get_dsar(session: Session, reference: str, *, lock: bool = False) -> DsarRequest:
    reference = (reference or "").strip().upper()
    if not _REFERENCE.match(reference):
        raise InvalidInput(f"'{reference}' is not a DSAR reference (DSAR-YYYY-NNNNNN)")
    query = select(DsarRequest).where(DsarRequest.reference == reference)
    return first_or_not_found(session, query, f"no DSAR request {reference}", lock=lock)


# ---------------------------------------------------------------- review and extension


def _detached(session: Session, request: DsarRequest) -> DsarRequest:
    """A dry run's answer: the request as loaded, cut loose so nothing about it is saved."""
    session.expunge(request)
    session.rollback()
    return request


def approval_refusal(request: DsarRequest, viewer: str | None, *, four_eyes: bool) -> str | None:
    """Why ``viewer`` may not approve this request, or None: the one rule the review refuses
    by and the desk offers its Approve button by.

    With ``four_eyes`` (the policy's ``[review] four_eyes``) nobody approves a request they
    logged themselves: one person alone must not both ask for and release someone's data.
    """
    if four_eyes and viewer is not None and request.requested_by == viewer:
        return (
            f"{viewer} logged {request.reference} and may not approve it too "
            "([review] four_eyes): another compliance officer must approve it"
        )
    return None


@dataclass(frozen=True)
class ErasureTarget:
    """What approving an erasure request acts on, as its impact preview showed it.

    ``version`` names it in one token: the erasure plan's hash prefix and a hash over the
    request, its subject and the whole plan hash. An approval carrying the version its
    approver saw is refused once any of these changed.
    """

    reference: str
    subject_id: str
    plan_hash: str | None
    version: str


def _erasure_target(request: DsarRequest, policy: Policy) -> ErasureTarget:
    plan = (
        plan_hash(plan_document(policy, DSAR_ERASURE_BUCKET))
        if policy.dsar.erasure_review
        else None
    )
    content = json.dumps(
        [request.reference, request.kind, request.subject_id, request.status, plan],
        separators=(",", ":"),
    )
    digest = hashlib.sha256(content.encode()).hexdigest()[:16]
    version = f"{(plan or '-')[:8]}.{digest}"
    return ErasureTarget(request.reference, request.subject_id, plan, version)


def erasure_target(session: Session, policy: Policy, reference: str) -> ErasureTarget:
    """The erasure request as an approval would find it now (its preview's version)."""
    target = _erasure_target(get_dsar(session, reference), policy)
    session.rollback()
    return target


def check_erasure_unchanged(
    session: Session, policy: Policy, request: DsarRequest, seen_version: str
) -> ErasureTarget:
    """The request's target now, or a Conflict when it is no longer what the approver saw."""
    now = _erasure_target(request, policy)
    if now.version == seen_version:
        return now
    parts = seen_version.split(".")
    if len(parts) != 2:
        why = "the preview's version is not one this desk made"
    elif parts[0] != (now.plan_hash or "-")[:8]:
        why = "the erasure plan in the policy changed"
    else:
        why = "the request is not the one previewed"
    raise Conflict(
        f"{request.reference} changed since you looked ({why}); nothing was decided. "
        "Look at it again, then decide."
    )


def review_dsar(
    session: Session,
    reference: str,
    decision: str,
    *,
    reviewer: Identity,
    four_eyes: bool,
    reason: str | None = None,
    now: datetime | None = None,
    policy: Policy | None = None,
    seen_version: str | None = None,
    execute: bool,
) -> DsarRequest:
    """A compliance officer approves or rejects a pending request, once; reject needs a reason.

    With ``four_eyes`` (the policy's ``[review] four_eyes``) nobody approves a request they
    logged themselves: one person alone must not both ask for and release someone's data.

    Approving an erasure request is its review: process-dsar-requests accepts its deletion
    record under this decision, and no batch is made. With ``[dsar] erasure_review`` the
    approver was shown the request's impact preview (``reports.review_queue.request_impact``)
    and the erasure plan it came from is stored, as a batch acceptance stores its plan, so
    apply-deletions refuses the erasure if the policy widens before it runs. An erasure is
    approved only given the ``policy``; given ``seen_version`` (``erasure_target(...).version``
    of the preview the approver saw) an erasure whose target changed since is refused.
    """
    if decision not in ("approve", "reject"):
        raise InvalidInput(f"decision must be approve or reject, got '{decision}'")
    require(reviewer, COMPLIANCE_OFFICER, to="review DSAR requests")
    reason = free_text(reason, field="reason")
    if decision == "reject" and reason is None:
        raise InvalidInput("rejecting a DSAR request needs a reason", field="reason")
    request = get_dsar(session, reference, lock=execute)
    _check_reviewable(request, decision, reviewer.email, four_eyes=four_eyes)
    erasure = decision == "approve" and request.kind == DsarKind.ERASURE
    if erasure and policy is None:
        raise TypeError("approving an erasure request needs the policy: it accepts its plan")
    if erasure and seen_version is not None and policy is not None:
        check_erasure_unchanged(session, policy, request, seen_version)
    if not execute:
        return _detached(session, request)
    now = now or utcnow()
    details: dict[str, Any] = {
        "kind": request.kind,
        **text_details(session, "reason", reason, subjects=[request.subject_id]),
    }
    if erasure and policy is not None:
        details.update(_accept_erasure_plan(session, policy, request))
    move(request, DsarStatus.APPROVED if decision == "approve" else DsarStatus.REJECTED)
    request.reviewed_by = reviewer.email
    request.reviewed_at = now
    request.reviewed_reason = reason
    audit_request(session, request, f"dsar.{request.status}", reviewer.email, details)
    session.commit()
    return request


def _check_reviewable(
    request: DsarRequest, decision: str, reviewer: str, *, four_eyes: bool
) -> None:
    """Refuse a decision this request no longer takes, or this reviewer may not make."""
    if request.status != DsarStatus.PENDING:
        by = f" by {request.reviewed_by}" if request.reviewed_by else ""
        raise Conflict(f"{request.reference} is already {request.status}{by}; not reviewed again")
    refused = approval_refusal(request, reviewer, four_eyes=four_eyes)
    if decision == "approve" and refused is not None:
        raise PermissionDenied(refused)
    if decision == "reject" and never_refused(request):
        raise Conflict(f"{request.reference} cannot be rejected ({BY_LAW}); approve it")


def _accept_erasure_plan(session: Session, policy: Policy, request: DsarRequest) -> dict[str, Any]:
    """Store the approved plan, so apply-deletions refuses a wider one; what the audit says."""
    details: dict[str, Any] = {"erasure_review": policy.dsar.erasure_review}
    if policy.dsar.erasure_review:
        request.accepted_plan_hash = store_plan(session, plan_document(policy, DSAR_ERASURE_BUCKET))
        details["plan_hash"] = request.accepted_plan_hash
    return details


def _extension(months: int, days: int) -> None:
    """An extension is a whole number of months or of days, not both."""
    limits = (("months", months, MAX_PERIOD_MONTHS), ("days", days, MAX_PERIOD_DAYS))
    for field, value, most in limits:
        if not 0 <= value <= most:
            raise InvalidInput(f"{{field}} must be from 1 to {most}, got {value}", field=field)
    if months and days:
        raise InvalidInput("give the extension in months or in days, not both", field="days")
    if not (months or days):
        raise InvalidInput("give the extension in months or in days", field="months")


def extend_dsar(
    session: Session,
    reference: str,
    *,
    policy: Policy,
    months: int = 0,
    days: int = 0,
    reason: str,
    actor: Identity,
    execute: bool,
) -> DsarRequest:
    """Extend the deadline by ``months`` or ``days``, with a reason, within the jurisdiction.

    The extensions add up, counted from receipt like the deadline itself (GDPR Art. 12(3):
    at most two more months; CCPA: 45 more days), and the new deadline may not pass the
    latest one computed at intake (``latest_due_at``).
    """
    by = require(actor, COMPLIANCE_OFFICER, to="extend DSAR deadlines")
    _extension(months, days)
    why = free_text(reason, field="reason")
    if why is None:
        raise InvalidInput("extending a DSAR deadline needs a reason", field="reason")
    request = get_dsar(session, reference, lock=execute)
    if request.status not in OPEN_DSAR_STATUSES:
        raise Conflict(f"{request.reference} is {request.status}; only open requests are extended")
    law = policy.jurisdictions.get(request.jurisdiction)
    if law is None:
        raise Conflict(
            f"{request.reference} falls under jurisdiction '{request.jurisdiction}', which the "
            "policy no longer declares ([jurisdictions]); its deadline cannot be extended"
        )
    total_months, total_days = request.extension_months + months, request.extension_days + days
    new_due = due_date(
        request.requested_at, law, extension_months=total_months, extension_days=total_days
    )
    _check_extended_due(request, law.name, new_due)
    if not execute:
        preview = _detached(session, request)
        preview.extended_due_at = new_due
        return preview
    request.extension_months, request.extension_days = total_months, total_days
    request.extended_due_at = new_due
    request.extension_reason = why
    audit_request(
        session,
        request,
        "dsar.extended",
        by,
        {"months": months, "days": days, "total_months": total_months,
         "total_days": total_days, "due_at": new_due.isoformat()},
    )  # fmt: skip
    session.commit()
    return request


def _check_extended_due(request: DsarRequest, law: str, new_due: datetime) -> None:
    """Conflict when the extended deadline passes the latest one, or does not move at all."""
    latest = request.latest_due_at
    if new_due > latest:
        done = period_text(request.extension_months, request.extension_days)
        raise Conflict(
            f"{request.reference} would then be due {new_due:%Y-%m-%d}, later than {law} "
            f"allows: {latest:%Y-%m-%d} at the latest"
            + (f" (already extended by {done})" if done else "")
        )
    if new_due <= effective_due_at(request):
        raise Conflict(
            f"{request.reference} would still be due {new_due:%Y-%m-%d}, the next working day; "
            "extend it by more"
        )


def retry_dsar(session: Session, reference: str, *, actor: Identity, execute: bool) -> DsarRequest:
    """Put a failed request back in the queue of approved requests."""
    by = require(actor, COMPLIANCE_OFFICER, to="retry DSAR requests")
    request = get_dsar(session, reference, lock=execute)
    if not next_actions(request).can_retry:
        raise Conflict(f"{request.reference} is {request.status}; only failed requests are retried")
    if not execute:
        return _detached(session, request)
    previous = request.last_error
    move(request, DsarStatus.APPROVED)
    request.deletion_record_id = None
    request.attempts = 0  # a person looked at it: it gets every attempt again
    request.next_attempt_at = None
    audit_request(session, request, "dsar.retried", by, {"previous_error": previous})
    session.commit()
    return request


# ---------------------------------------------------------------- what may happen next


@dataclass(frozen=True)
class DsarActions:
    """What may happen next to a request; pages show their buttons from this, not from
    status strings, so the library's rules are written once."""

    can_review: bool  # approve or reject, once
    can_extend: bool  # open, and due before the latest its jurisdiction allows
    can_retry: bool  # failed, back to the queue
    can_download: bool  # an access export was written


def has_finished_export(request: DsarRequest) -> bool:
    """An access export was written: ready to send, or sent (and sendable again)."""
    return request.kind in EXPORT_KINDS and request.status in (
        DsarStatus.READY,
        DsarStatus.COMPLETED,
    )


def complete_request(session: Session, request: DsarRequest, actor: str, now: datetime) -> None:
    """Mark the request completed, audited with whether it met its deadline and its evidence.

    An access request completes when its link email was accepted for delivery; an erasure
    when its deletion record was applied.
    """
    move(request, DsarStatus.COMPLETED)
    request.completed_at = now
    request.last_error = None
    details: dict[str, Any] = {"kind": request.kind, "on_time": now <= effective_due_at(request)}
    if request.kind in EXPORT_KINDS:
        details.update(bytes=request.export_bytes, sha256=request.export_sha256)
    elif request.kind == DsarKind.ERASURE:
        details["deletion_record_id"] = request.deletion_record_id
    audit_request(session, request, "dsar.completed", actor, details)


def next_actions(request: DsarRequest) -> DsarActions:
    status = DsarStatus(request.status)
    extendable = effective_due_at(request) < request.latest_due_at
    return DsarActions(
        can_review=can_move(status, DsarStatus.REJECTED),
        can_extend=status in OPEN_DSAR_STATUSES and extendable,
        can_retry=status == DsarStatus.FAILED and can_move(status, DsarStatus.APPROVED),
        can_download=has_finished_export(request),
    )


# ---------------------------------------------------------------- exports for staff


#: How long a presigned URL to an export serves it: long enough to start the download.
PRESIGNED_URL_SECONDS = 60


@dataclass(frozen=True)
class Download:
    """An export handed over: its bytes (at most ``[exports] max_download_mb``), or for a
    larger one in a bucket a presigned ``url`` that serves it for 60 seconds."""

    reference: str
    filename: str
    content: bytes | None
    url: str | None = None


def fetch_export(store: ExportStore, request: DsarRequest, *, max_bytes: int) -> Download:
    """The export of a request, read back and checked against its SHA-256, or a URL to it.

    Never more than ``max_bytes`` is held in memory: a larger export is served by the bucket
    itself, through a presigned URL made only now, after every check passed.
    """
    filename = f"{request.reference}.zip"
    if not has_finished_export(request):
        raise Conflict(f"{request.reference} has no finished export (it is {request.status})")
    size = store.size(request.export_path) if request.export_path else None
    if size is None:
        raise NotFound(f"the export of {request.reference} was removed (exports expire)")
    assert request.export_path is not None
    if size > max_bytes:
        url = store.presigned_url(
            request.export_path, filename=filename, seconds=PRESIGNED_URL_SECONDS
        )
        if url is None:
            raise Conflict(
                f"the export of {request.reference} is larger than [exports] max_download_mb "
                "allows to serve from here"
            )
        return Download(request.reference, filename, None, url)
    content = store.read(request.export_path, sha256=request.export_sha256)
    if content is None:
        raise NotFound(f"the export of {request.reference} was removed (exports expire)")
    return Download(request.reference, filename, content)


def open_export_for_download(
    session: Session, policy: Policy, reference: str, *, actor: Identity
) -> Download:
    """The finished export, for support staff to hand over; each opening is audited."""
    by = require(actor, SUPPORT, COMPLIANCE_OFFICER, to="download DSAR exports")
    request = get_dsar(session, reference)
    try:
        download = fetch_export(
            export_store(policy), request, max_bytes=policy.exports.max_download_bytes
        )
    except BaseException:
        session.rollback()
        raise
    audit_request(session, request, "dsar.export_downloaded", by, {"sha256": request.export_sha256})
    session.commit()
    return download


# ---------------------------------------------------------------- lookups


def requests_by_reference(session: Session, references: Sequence[str]) -> list[DsarRequest]:
    return list(
        session.scalars(select(DsarRequest).where(DsarRequest.reference.in_(list(references))))
    )


@dataclass(frozen=True)
class BulkDsarReview:
    """Requests decided one by one; those someone else decided meanwhile, skipped with why."""

    decision: str
    decided: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]
    executed: bool


def review_dsars(
    session: Session,
    references: list[str],
    decision: str,
    *,
    reviewer: Identity,
    four_eyes: bool,
    reason: str | None = None,
    policy: Policy | None = None,
    seen_versions: Mapping[str, str] | None = None,
    execute: bool,
) -> BulkDsarReview:
    """Approve or reject several pending requests, each reviewed and audited on its own
    (an erasure's approval accepts its plan, as one ``review_dsar`` does).

    Given ``seen_versions`` (per erasure request, the version its preview showed), an
    approval is refused up front, before any request is decided, when a still pending
    erasure request changed since.
    """
    wanted = list(dict.fromkeys(references))
    if not wanted:
        raise InvalidInput("choose at least one request")
    if decision not in ("approve", "reject"):
        raise InvalidInput(f"decision must be approve or reject, got '{decision}'")
    require(reviewer, COMPLIANCE_OFFICER, to="review DSAR requests")
    if decision == "reject" and free_text(reason, field="reason") is None:
        raise InvalidInput("rejecting a DSAR request needs a reason", field="reason")
    if decision == "approve" and policy is None:
        kinds = {r.kind for r in requests_by_reference(session, wanted)}
        session.rollback()
        if DsarKind.ERASURE in kinds:  # refused before any is decided, not halfway through
            raise TypeError("approving an erasure request needs the policy: it accepts its plan")
    if decision == "approve" and seen_versions and policy is not None:
        previewed = [r for r in wanted if r in seen_versions]
        for request in requests_by_reference(session, previewed):
            if request.kind == DsarKind.ERASURE and request.status == DsarStatus.PENDING:
                check_erasure_unchanged(session, policy, request, seen_versions[request.reference])
        session.rollback()
    decided: list[str] = []
    skipped: list[tuple[str, str]] = []
    for reference in wanted:
        try:
            review_dsar(
                session, reference, decision, reviewer=reviewer, four_eyes=four_eyes,
                reason=reason, policy=policy, execute=execute,
                seen_version=(seen_versions or {}).get(reference),
            )  # fmt: skip
            decided.append(reference)
        except (Conflict, NotFound, PermissionDenied) as exc:  # four eyes: their own request
            session.rollback()
            skipped.append((reference, str(exc)))
    return BulkDsarReview(decision, tuple(decided), tuple(skipped), execute)
