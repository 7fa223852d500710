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

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from compliance.audit.chain import record_event
from compliance.dsar.deadlines import due_date, effective_due_at, jurisdiction_for, latest_due_date
from compliance.dsar.objections import BY_LAW, Scope, check_scope, never_refused
from compliance.dsar.rectification import (
    CheckedCorrection,
    Correction,
    check_corrections,
    store_corrections,
)
from compliance.dsar.restrictions import refuse_if_erased
from compliance.dsar.subjects import kinds_with_email, resolve_subject, subject_country
from compliance.emails import check_email
from compliance.errors import (
    ConfigError,
    InvalidInput,
    quoted,
    stored_error,
)
from compliance.free_text import free_text
from compliance.logs import log_event
from compliance.policy.model import Policy
from compliance.roles import API_INTAKE, COMPLIANCE_OFFICER, SUPPORT, Identity, require
from compliance.store.models import DsarRequest, utcnow
from compliance.store.queries import dsar_open, first_or_not_found
from compliance.store.states import (
    DEFAULT_SUBJECT_TYPE,
    EXPORT_KINDS,
    OPEN_DSAR_STATUSES,
    DsarKind,
    DsarStatus,
    can_move,
    move,
)

KINDS = tuple(k.value for k in DsarKind)
#: What a request's reference looks like (``DSAR-2026-000042``: year, then its id).
REFERENCE_FORM = re.compile(r"DSAR-[0-9]{4}-[0-9]{6,}")
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


def open_request(
    session: Session, subject_type: str, subject_id: str, kind: str
) -> DsarRequest | None:
    """The subject's open request of this kind, if any: at most one is open at a time."""
    return session.scalars(
        select(DsarRequest).where(
            DsarRequest.subject_type == subject_type,
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


def outcome_line(result: Submission) -> str:
    """One line on what logging did: logged, would be logged, or already open (the first)."""
    request = result.request
    due = f"due {request.due_at:%Y-%m-%d} ({request.jurisdiction})"
    who = f"subject {request.subject_id}"
    if request.subject_type != DEFAULT_SUBJECT_TYPE:
        who += f" ({request.subject_type})"
    if not result.created:
        return f"{request.reference} is already open for this subject ({request.status}), {due}"
    if request.reference is None:
        return f"Would log {with_article(request.kind)} request for {who}, {due}"
    return f"Logged {request.reference} ({request.kind}, {who}), {due}"


def submit_each_kind(
    session: Session,
    policy: Policy,
    app_engine: Engine,
    *,
    email: str | None = None,
    subject_type: str | None = None,
    **kwargs: Any,
) -> list[Submission]:
    """``submit``, once per kind of data subject the request is about.

    Named by id, or with ``subject_type`` given, that is one kind. An email alone, in a desk
    serving several kinds, is looked up in every kind with an email column: a person who is
    a customer and an employee gets one request for each, decided on its own (their data as
    a customer and as an employee differ, and so may the answer).
    """
    if email is None or subject_type is not None or not policy.multiple_subject_types:
        return [
            submit(session, policy, app_engine, email=email, subject_type=subject_type, **kwargs)
        ]
    kinds = kinds_with_email(policy, app_engine, email)
    if kwargs.get("execute"):  # every kind's checks pass before any request is written
        checks = {**kwargs, "execute": False}
        for kind in kinds:
            submit(session, policy, app_engine, email=email, subject_type=kind, **checks)
    return [
        submit(session, policy, app_engine, email=email, subject_type=kind, **kwargs)
        for kind in kinds
    ]


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
    subject_type: str | None = None,
    execute: bool,
) -> Submission:
    """Log a request (committed, audited); a duplicate open request returns the existing one.

    The subject is of ``subject_type`` (a policy of one kind may leave it out). How identity
    was checked is a method from ``[dsar] identity_methods`` plus a note; the dashboard and
    the API require it (``require_identity``), scripted back-office use may leave it out and
    the approver then sees that it was not recorded. The request falls under ``jurisdiction``
    if given, else as ``deadlines.jurisdiction_for`` picks it. With ``execute=False`` nothing
    is written and an unsaved request (reference None) shows what would be logged. An
    objection names its ``scope``; one to direct marketing logged with an identity check is
    accepted at once (Art. 21(3), ``objections.never_refused``); a rectification lists its
    ``corrections``, each to data of the subject's kind.
    """
    by = _check_intake(policy, kind, requested_by, jurisdiction)
    objection = check_scope(kind, scope)
    checked = check_corrections(policy, app_engine, kind, corrections, subject_type)
    identity = _check_identity(policy, identity_check, identity_method, require_identity)
    subject = _subject(policy, app_engine, subject_type, subject_id, email)
    refuse_if_erased(session, policy, kind, subject[0], subject[1])
    existing = open_request(session, subject[0], subject[1], kind)
    if existing is not None:
        return Submission(existing, False)
    request = _new_request(
        policy,
        app_engine,
        kind=kind,
        subject=subject,
        jurisdiction=jurisdiction,
        requested_by=by,
        requested_at=now or utcnow(),
        identity=identity,
        channel=channel,
        client_ip=client_ip,
        user_agent=user_agent,
        scope=objection,
    )
    if not execute:
        return _dry_run(session, request)
    return _save_submission(session, request, checked)


def _subject(
    policy: Policy, app_engine: Engine, kind: str | None, key: str | None, email: str | None
) -> tuple[str, str, str | None]:
    """(kind of subject, key, email) of the subject named by key or email."""
    kind = policy.subject_kind(kind).name
    found, address = resolve_subject(
        policy, app_engine, subject_id=key, email=email, subject_type=kind
    )
    return kind, found, address


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
    subject: tuple[str, str, str | None],
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
    subject_type, key, subject_email = subject
    note, identity_method = identity
    country = None if jurisdiction else subject_country(policy, app_engine, key, subject_type)
    law = jurisdiction_for(policy, chosen=jurisdiction, country=country)
    return DsarRequest(
        reference=f"tmp-{uuid.uuid4().hex[:28]}",
        kind=kind,
        subject_id=key,
        subject_type=subject_type,
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
        existing = open_request(session, request.subject_type, key, kind)
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


# ---------------------------------------------------------------- lookups


def requests_by_reference(session: Session, references: Sequence[str]) -> list[DsarRequest]:
    return list(
        session.scalars(select(DsarRequest).where(DsarRequest.reference.in_(list(references))))
    )


def fail_request(session: Session, request: DsarRequest, message: str, actor: str) -> None:
    """Mark the request failed with the reason shown to staff; the worker and the desk share it."""
    move(request, DsarStatus.FAILED)
    request.last_error = stored_error(message)
    audit_request(
        session, request, "dsar.failed", actor, {"kind": request.kind, "error": request.last_error}
    )
