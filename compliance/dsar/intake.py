"""Intake from host applications: the rules the intake API adds on top of ``submit``.

A host application's "delete my account" button can be pressed again and again; staff
cannot. So the API allows at most one new request per subject and kind in 24 hours (the
answer says when to try again), and one open request per subject and kind, as everywhere.
An unknown subject answers 404, so a key could walk the id space to learn who exists: each
key may ask about only so many unknown subjects a minute, then is refused (429) until the
minute is over, and reaching the limit is audited.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, and_, case, func, literal, select, update
from sqlalchemy.orm import Session

from compliance.audit.chain import record_event
from compliance.audit.subject_keys import key_forms, key_secret
from compliance.dsar.api_keys import ApiKeyInfo
from compliance.dsar.deadlines import effective_due_at
from compliance.dsar.objections import check_scope
from compliance.dsar.rectification import Correction, check_corrections
from compliance.dsar.requests import (
    KINDS,
    Submission,
    check_identity_method,
    get_dsar,
    open_request,
    submit,
    with_article,
)
from compliance.dsar.subjects import resolve_subject
from compliance.errors import Conflict, InvalidInput, NotFound, quoted
from compliance.free_text import free_text
from compliance.policy.model import Policy
from compliance.store.models import ApiKey, DsarRequest, utcnow

INTAKE_WINDOW = timedelta(hours=24)
#: Unknown subjects one key may ask about per window before it is refused until the window ends.
UNKNOWN_SUBJECT_LIMIT = 20
UNKNOWN_SUBJECT_WINDOW = timedelta(minutes=1)


class TooSoon(Conflict):
    """A request for this subject and kind came in less than 24 hours ago (HTTP 429)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AlreadyOpen(Conflict):
    """An open request of this kind already exists for the subject (HTTP 409).

    ``reference`` is set only for the key that logged it: another caller learns that one is
    open, never which request it is or how far it got.
    """

    def __init__(self, message: str, reference: str | None) -> None:
        super().__init__(message)
        self.reference = reference


def already_open(request: DsarRequest, key: ApiKeyInfo) -> AlreadyOpen:
    """The 409 for ``key``: naming the open request only to the key that logged it."""
    if request.requested_by == key.actor:
        return AlreadyOpen(
            f"{request.reference} is already open for this subject ({request.status})",
            reference=request.reference,
        )
    return AlreadyOpen(
        f"{with_article(request.kind)} request for this subject is already open", None
    )


@dataclass(frozen=True)
class RequestStatus:
    """What a host application may learn about a request it logged: no personal data."""

    reference: str
    kind: str
    status: str
    jurisdiction: str
    requested_at: datetime
    due_at: datetime
    extended: bool
    completed_at: datetime | None


def check_intake_rate(
    session: Session,
    subject: tuple[str, str],
    kind: str,
    *,
    now: datetime | None = None,
    secret: bytes | None = None,
) -> None:
    """TooSoon when this subject (kind of subject, key) asked for this kind within the last
    24 hours (a request completed and forgotten since is found by the keyed hash of the key:
    ``secret``)."""
    now = now or utcnow()
    subject_type, subject_id = subject
    latest = session.scalar(
        select(func.max(DsarRequest.requested_at)).where(
            DsarRequest.subject_type == subject_type,
            DsarRequest.subject_id.in_(list(key_forms([subject_id], secret))),
            DsarRequest.kind == kind,
        )
    )
    if latest is None:
        return
    if latest.tzinfo is None:  # max() loses the column type on some backends
        latest = latest.replace(tzinfo=now.tzinfo)
    wait = (latest + INTAKE_WINDOW - now).total_seconds()
    if wait > 0:
        raise TooSoon(
            f"{with_article(kind)} request for this subject came in less than 24 hours ago; "
            f"try again in {math.ceil(wait / 3600)} hour(s)",
            retry_after=math.ceil(wait),
        )


def check_unknown_subjects(session: Session, key: ApiKeyInfo, *, now: datetime) -> None:
    """TooSoon (429) while ``key`` is past its unknown-subject limit for the current window.

    Every request is refused then, not only the unknown ones: a 201 for a known subject
    beside a 429 for the others would still tell them apart.
    """
    row = session.execute(
        select(ApiKey.unknown_subjects, ApiKey.unknown_since).where(ApiKey.name == key.name)
    ).one()
    if row.unknown_since is None or row.unknown_subjects < UNKNOWN_SUBJECT_LIMIT:
        return
    wait = (row.unknown_since + UNKNOWN_SUBJECT_WINDOW - now).total_seconds()
    if wait > 0:
        raise TooSoon(
            f"this API key asked about {UNKNOWN_SUBJECT_LIMIT} unknown subjects within a minute; "
            f"try again in {math.ceil(wait)} second(s)",
            retry_after=math.ceil(wait),
        )


def count_unknown_subject(session: Session, key: ApiKeyInfo, *, now: datetime) -> int:
    """Count one unknown subject against ``key`` (committed); audit reaching the limit.

    One statement, so API workers side by side count every miss; a window older than a
    minute starts again at 1.
    """
    fresh = and_(
        ApiKey.unknown_since.is_not(None), ApiKey.unknown_since > now - UNKNOWN_SUBJECT_WINDOW
    )
    since_type = ApiKey.__table__.c.unknown_since.type  # stored as every timestamp is: naive UTC
    count = session.execute(
        update(ApiKey)
        .where(ApiKey.name == key.name)
        .values(
            unknown_subjects=case((fresh, ApiKey.unknown_subjects + 1), else_=1),
            unknown_since=case((fresh, ApiKey.unknown_since), else_=literal(now, since_type)),
        )
        .returning(ApiKey.unknown_subjects)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    if count == UNKNOWN_SUBJECT_LIMIT:
        record_event(
            session,
            actor=key.actor,
            action="api_key.unknown_subjects_limited",
            target_type="api_key",
            target_id=key.name,
            details={
                "unknown_subjects": count,
                "window_seconds": int(UNKNOWN_SUBJECT_WINDOW.total_seconds()),
            },
        )
    session.commit()
    return count


def submit_from_api(
    session: Session,
    policy: Policy,
    app_engine: Engine,
    *,
    key: ApiKeyInfo,
    kind: str,
    subject_id: str | None,
    email: str | None,
    identity_method: str | None,
    identity_note: str | None,
    client_ip: str | None,
    user_agent: str | None,
    jurisdiction: str | None = None,
    now: datetime | None = None,
    scope: str | None = None,
    corrections: Sequence[Correction] = (),
    subject_type: str | None = None,
) -> Submission:
    """Log a request for a host application, under its key's name; refuse floods and repeats.
    With several kinds of data subject it names ``subject_type`` (the host knows who asks)."""
    if kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}, got {quoted(kind)}")
    note = free_text(identity_note, field="identity_note")  # a bad body before any lookup
    # A malformed body is a 422 before any limit answers 429: the caller's bug, not a flood.
    check_identity_method(policy, identity_method, note, required=True)
    if jurisdiction is not None:
        policy.jurisdiction(jurisdiction)
    check_scope(kind, scope)
    subject_type = policy.subject_kind(subject_type).name
    check_corrections(policy, app_engine, kind, corrections, subject_type)
    now = now or utcnow()
    subject_key = _find_subject(
        session, policy, app_engine, key, (subject_type, subject_id, email), now=now
    )
    _refuse_repeat(session, key, (subject_type, subject_key), kind, now=now, policy=policy)
    result = submit(
        session,
        policy,
        app_engine,
        kind=kind,
        subject_id=subject_key,
        subject_type=subject_type,
        jurisdiction=jurisdiction,
        requested_by=key.identity,
        identity_check=note,
        identity_method=identity_method,
        require_identity=True,
        channel="api",
        client_ip=client_ip,
        user_agent=user_agent,
        now=now,
        scope=scope,
        corrections=corrections,
        execute=True,
    )
    if not result.created:  # a concurrent submission won the race
        raise already_open(result.request, key)
    return result


def _find_subject(
    session: Session,
    policy: Policy,
    app_engine: Engine,
    key: ApiKeyInfo,
    subject: tuple[str, str | None, str | None],
    *,
    now: datetime,
) -> str:
    """The subject's key, from (kind, id, email); an unknown one counts against the API key,
    so none walks the ids."""
    subject_type, subject_id, email = subject
    check_unknown_subjects(session, key, now=now)
    try:
        subject_key, _ = resolve_subject(
            policy, app_engine, subject_id=subject_id, email=email, subject_type=subject_type
        )
    except NotFound:
        count_unknown_subject(session, key, now=now)
        raise
    return subject_key


def _refuse_repeat(
    session: Session,
    key: ApiKeyInfo,
    subject: tuple[str, str],
    kind: str,
    *,
    now: datetime,
    policy: Policy,
) -> None:
    """Refuse a request the subject already has open (409), or one asked too soon (429)."""
    # An open request is the answer (409) before the 24-hour limit (429): asking again while
    # one is open is a repeat, not a flood.
    subject_type, subject_key = subject
    existing = open_request(session, subject_type, subject_key, kind)
    if existing is not None:
        raise already_open(existing, key)
    check_intake_rate(session, subject, kind, now=now, secret=key_secret(policy))


def request_status(session: Session, reference: str, *, key: ApiKeyInfo) -> RequestStatus:
    """The status of a request this key logged; other requests are not found, not refused."""
    request = get_dsar(session, reference)
    if request.requested_by != key.actor:
        raise NotFound(f"no DSAR request {request.reference}")
    return RequestStatus(
        reference=request.reference,
        kind=request.kind,
        status=request.status,
        jurisdiction=request.jurisdiction,
        requested_at=request.requested_at,
        due_at=effective_due_at(request),
        extended=request.extended_due_at is not None,
        completed_at=request.completed_at,
    )
