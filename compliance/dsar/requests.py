"""DSAR requests: intake, one-month deadlines, review, extension, processing and statistics.

A data subject asks for a copy of their data (``access``) or its erasure (``erasure``).
Support logs the request, a compliance officer approves it, and ``process_dsar_requests``
does the work before the deadline of GDPR Art. 12(3): one calendar month from receipt,
extendable by at most two more with a reason. The public functions commit their change
together with its audit event, so a page or a host application needs no transaction logic.
"""

from __future__ import annotations

import calendar
import re
import statistics
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, MetaData, Table, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from compliance.audit.chain import record_event
from compliance.deletion.apply import one_line
from compliance.deletion.records import add_records
from compliance.dsar.exports import build_access_export
from compliance.dsar.forget import forget_subject
from compliance.emails import check_email
from compliance.errors import ComplianceError, Conflict, InvalidInput, NotFound
from compliance.logs import log_event
from compliance.policy.datamap import DataMap, normalise_subject_key
from compliance.policy.loader import DSAR_ERASURE_BUCKET, Policy
from compliance.store.models import ComplianceProfile, DeletionRecord, DsarRequest, utcnow

KINDS = ("access", "erasure")
OPEN_STATUSES = ("pending", "approved", "processing", "failed")
STATUSES = ("pending", "approved", "rejected", "processing", "completed", "failed")
MAX_EXTENSION_MONTHS = 2
CLAIM_LEASE = timedelta(minutes=30)  # far longer than one export or erasure takes
_REFERENCE = re.compile(r"^DSAR-\d{4}-\d{6,}$")

if TYPE_CHECKING:  # pandas costs ~80 MB; only the dashboard's reads need it
    import pandas as pd


# ---------------------------------------------------------------- deadlines


def add_months(moment: datetime, months: int) -> datetime:
    """Calendar months, clamped to the month's last day: 31 Jan + 1 = 28 or 29 Feb."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def due_date(received_at: datetime, extension_months: int = 0) -> datetime:
    """GDPR Art. 12(3): one month from receipt, plus any extension, counted from receipt."""
    return add_months(received_at, 1 + extension_months)


def effective_due_at(request: DsarRequest) -> datetime:
    return request.extended_due_at or request.due_at


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
        address = check_email(email, "the subject's email")
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


def _open_request(session: Session, subject_id: str, kind: str) -> DsarRequest | None:
    return session.scalars(
        select(DsarRequest).where(
            DsarRequest.subject_id == subject_id,
            DsarRequest.kind == kind,
            DsarRequest.status.in_(OPEN_STATUSES),
        )
    ).first()


_API_ACTOR = re.compile(r"^api:[a-z0-9][a-z0-9._-]{0,62}$")


def check_requester(requested_by: str) -> str:
    """Staff are named by email; a host application by its API key's name (``api:NAME``)."""
    value = (requested_by or "").strip()
    if _API_ACTOR.match(value):
        return value
    return check_email(value, "--requested-by")


def check_identity_method(
    policy: Policy, method: str | None, note: str | None, *, required: bool
) -> str | None:
    """The method, if one of the policy's; 'other' needs a note saying what was done."""
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
    if method == "other" and not (note or "").strip():
        raise InvalidInput("identity check 'other' needs a note saying how it was checked")
    return method


@dataclass(frozen=True)
class Submission:
    request: DsarRequest
    created: bool  # False: an open request of the same kind already existed


def submit_dsar(session: Session, policy: Policy, app_engine: Engine, **kwargs: Any) -> DsarRequest:
    """Log a request; a duplicate open request returns the existing one (see ``submit``)."""
    return submit(session, policy, app_engine, **kwargs).request


def submit(
    session: Session,
    policy: Policy,
    app_engine: Engine,
    *,
    kind: str,
    subject_id: str | None = None,
    email: str | None = None,
    requested_by: str,
    identity_check: str | None = None,
    identity_method: str | None = None,
    require_identity: bool = False,
    channel: str = "cli",
    client_ip: str | None = None,
    user_agent: str | None = None,
    now: datetime | None = None,
    execute: bool = True,
) -> Submission:
    """Log a request (committed, audited); a duplicate open request returns the existing one.

    How identity was checked is a method from ``[dsar] identity_methods`` plus a note; the
    dashboard and the API require it (``require_identity``), scripted back-office use may
    leave it out and the approver then sees that it was not recorded. With
    ``execute=False`` nothing is written and an unsaved request (reference None) shows what
    would be logged.
    """
    if kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}, got '{kind}'")
    requested_by = check_requester(requested_by)
    identity_method = check_identity_method(
        policy, identity_method, identity_check, required=require_identity
    )
    key, subject_email = resolve_subject(policy, app_engine, subject_id=subject_id, email=email)
    now = now or utcnow()
    existing = _open_request(session, key, kind)
    if existing is not None:
        return Submission(existing, False)
    request = DsarRequest(
        reference=f"tmp-{uuid.uuid4().hex[:28]}",
        kind=kind,
        subject_id=key,
        subject_email=subject_email,
        status="pending",
        requested_by=requested_by,
        requested_at=now,
        identity_check=(identity_check or "").strip() or None,
        identity_method=identity_method,
        channel=channel,
        client_ip=(client_ip or "")[:64] or None,
        user_agent=(user_agent or "")[:512] or None,
        due_at=due_date(now),
        extension_months=0,
        attempts=0,
    )
    if not execute:
        request.reference = None  # type: ignore[assignment]
        session.rollback()
        return Submission(request, True)
    try:
        with session.begin_nested():
            session.add(request)
            session.flush()  # the row id makes the reference unique without a counter table
            request.reference = f"DSAR-{now.year}-{request.id:06d}"
            session.flush()
    except IntegrityError:
        # Another submission for the same subject and kind won the race.
        existing = _open_request(session, key, kind)
        if existing is None:
            raise
        return Submission(existing, False)
    record_event(
        session,
        actor=requested_by,
        action="dsar.submitted",
        target_type="dsar_request",
        target_id=request.reference,
        details={
            "kind": kind,
            "due_at": request.due_at.isoformat(),
            "channel": channel,
            "identity_method": identity_method,
        },
    )
    session.commit()
    log_event("dsar.submitted", reference=request.reference, kind=kind, channel=channel)
    return Submission(request, True)


def get_dsar(session: Session, reference: str, *, lock: bool = False) -> DsarRequest:
    reference = (reference or "").strip().upper()
    if not _REFERENCE.match(reference):
        raise InvalidInput(f"'{reference}' is not a DSAR reference (DSAR-YYYY-NNNNNN)")
    query = select(DsarRequest).where(DsarRequest.reference == reference)
    if lock:
        query = query.with_for_update()
    request = session.scalars(query).first()
    if request is None:
        raise NotFound(f"no DSAR request {reference}")
    return request


# ---------------------------------------------------------------- review and extension


def _detached(session: Session, request: DsarRequest) -> DsarRequest:
    """A dry run's answer: the request as loaded, cut loose so nothing about it is saved."""
    session.expunge(request)
    session.rollback()
    return request


def review_dsar(
    session: Session,
    reference: str,
    decision: str,
    *,
    reviewer: str,
    reason: str | None = None,
    now: datetime | None = None,
    execute: bool = True,
) -> DsarRequest:
    """A compliance officer approves or rejects a pending request, once; reject needs a reason."""
    if decision not in ("approve", "reject"):
        raise InvalidInput(f"decision must be approve or reject, got '{decision}'")
    reviewer = check_email(reviewer, "--reviewer")
    reason = (reason or "").strip() or None
    if decision == "reject" and reason is None:
        raise InvalidInput("rejecting a DSAR request needs a reason (--reason)")
    request = get_dsar(session, reference, lock=execute)
    if request.status != "pending":
        by = f" by {request.reviewed_by}" if request.reviewed_by else ""
        raise Conflict(f"{request.reference} is already {request.status}{by}; not reviewed again")
    if not execute:
        return _detached(session, request)
    now = now or utcnow()
    request.status = "approved" if decision == "approve" else "rejected"
    request.reviewed_by = reviewer
    request.reviewed_at = now
    request.reviewed_reason = reason
    record_event(
        session,
        actor=reviewer,
        action=f"dsar.{request.status}",
        target_type="dsar_request",
        target_id=request.reference,
        details={"kind": request.kind, "reason": reason},
    )
    session.commit()
    return request


def extend_dsar(
    session: Session,
    reference: str,
    *,
    months: int,
    reason: str,
    actor: str,
    execute: bool = True,
) -> DsarRequest:
    """Art. 12(3): extend by one or two months, at most two in total, with a reason."""
    if months not in (1, 2):
        raise InvalidInput(f"--months must be 1 or 2, got {months}")
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("extending a DSAR deadline needs a reason (--reason)")
    request = get_dsar(session, reference, lock=execute)
    if request.status not in OPEN_STATUSES:
        raise Conflict(f"{request.reference} is {request.status}; only open requests are extended")
    total = request.extension_months + months
    if total > MAX_EXTENSION_MONTHS:
        raise Conflict(
            f"{request.reference} is already extended by {request.extension_months} month(s); "
            f"at most {MAX_EXTENSION_MONTHS} in total"
        )
    new_due = due_date(request.requested_at, total)
    if not execute:
        preview = _detached(session, request)
        preview.extended_due_at = new_due
        return preview
    request.extension_months = total
    request.extended_due_at = new_due
    request.extension_reason = reason
    record_event(
        session,
        actor=actor,
        action="dsar.extended",
        target_type="dsar_request",
        target_id=request.reference,
        details={"months": months, "total_months": total, "due_at": new_due.isoformat()},
    )
    session.commit()
    return request


def retry_dsar(
    session: Session, reference: str, *, actor: str, execute: bool = True
) -> DsarRequest:
    """Put a failed request back in the queue of approved requests."""
    request = get_dsar(session, reference, lock=execute)
    if request.status != "failed":
        raise Conflict(f"{request.reference} is {request.status}; only failed requests are retried")
    if not execute:
        return _detached(session, request)
    previous = request.last_error
    request.status = "approved"
    request.deletion_record_id = None
    record_event(
        session,
        actor=actor,
        action="dsar.retried",
        target_type="dsar_request",
        target_id=request.reference,
        details={"previous_error": previous},
    )
    session.commit()
    return request


# ---------------------------------------------------------------- processing


@dataclass
class ProcessResult:
    claimed: int = 0
    exported: int = 0
    erasure_scheduled: int = 0
    completed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    waiting: list[str] = field(default_factory=list)
    would_process: list[str] = field(default_factory=list)
    executed: bool = False


def _claimable(now: datetime, lease: timedelta) -> Any:
    """Approved requests, and claims whose worker died before doing anything lasting.

    A worker killed between its claim and its result leaves a request 'processing' with no
    export and no deletion record; once the lease runs out the next run takes it over, so a
    crash never loses a request. (Erasures waiting for their record keep the record id.)
    """
    abandoned = and_(
        DsarRequest.status == "processing",
        DsarRequest.deletion_record_id.is_(None),
        or_(
            DsarRequest.processing_started_at.is_(None),
            DsarRequest.processing_started_at <= now - lease,
        ),
    )
    return or_(DsarRequest.status == "approved", abandoned)


def claim_requests(
    session: Session,
    *,
    limit: int = 20,
    now: datetime | None = None,
    lease: timedelta = CLAIM_LEASE,
) -> list[int]:
    """Mark up to ``limit`` claimable requests as processing and commit; return their ids.

    On PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets workers run side by side; the UPDATE's
    repeated condition keeps the claim exclusive on SQLite as well.
    """
    now = now or utcnow()
    query = (
        select(DsarRequest.id)
        .where(_claimable(now, lease))
        .order_by(DsarRequest.requested_at, DsarRequest.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list(session.scalars(query))
    if not ids:
        session.rollback()
        return []
    claimed = list(
        session.scalars(
            update(DsarRequest)
            .where(DsarRequest.id.in_(ids), _claimable(now, lease))
            .values(status="processing", processing_started_at=now, last_error=None)
            .returning(DsarRequest.id)
        )
    )
    session.commit()
    return sorted(claimed)


def _fail(session: Session, request: DsarRequest, message: str, actor: str) -> None:
    request.status = "failed"
    request.last_error = message[:1000]
    record_event(
        session,
        actor=actor,
        action="dsar.failed",
        target_type="dsar_request",
        target_id=request.reference,
        details={"kind": request.kind, "error": request.last_error},
    )


def _complete(session: Session, request: DsarRequest, actor: str, now: datetime) -> None:
    request.status = "completed"
    request.completed_at = now
    request.last_error = None
    details: dict[str, Any] = {"kind": request.kind, "on_time": now <= effective_due_at(request)}
    if request.kind == "access":
        details.update(bytes=request.export_bytes, sha256=request.export_sha256)
    else:
        details["deletion_record_id"] = request.deletion_record_id
    record_event(
        session,
        actor=actor,
        action="dsar.completed",
        target_type="dsar_request",
        target_id=request.reference,
        details=details,
    )


def _process_access(
    session: Session, datamap: DataMap, request: DsarRequest, actor: str, now: datetime
) -> None:
    export = build_access_export(
        datamap,
        request.subject_id,
        reference=request.reference,
        directory=datamap.policy.export_dir,
        now=now,
    )
    request.export_path = str(export.path)
    request.export_bytes = export.bytes
    request.export_sha256 = export.sha256
    _complete(session, request, actor, utcnow())


def _process_erasure(
    session: Session, policy: Policy, request: DsarRequest, actor: str, now: datetime
) -> None:
    accepted = None if policy.dsar.erasure_review else True
    add_records(
        session,
        DSAR_ERASURE_BUCKET,
        [request.subject_id],
        actor=actor,
        scheduled_at=now,
        now=now,
        accepted=accepted,
    )
    # The open record, new or already there, is the one whose application completes us.
    request.deletion_record_id = session.scalar(
        select(DeletionRecord.id)
        .join(ComplianceProfile, ComplianceProfile.id == DeletionRecord.compliance_profile_id)
        .where(
            ComplianceProfile.subject_id == request.subject_id,
            DeletionRecord.bucket == DSAR_ERASURE_BUCKET,
            DeletionRecord.deletion_applied_at.is_(None),
        )
    )
    record_event(
        session,
        actor=actor,
        action="dsar.erasure_scheduled",
        target_type="dsar_request",
        target_id=request.reference,
        details={"deletion_record_id": request.deletion_record_id, "review": accepted is None},
    )


def _settle_erasures(
    session: Session, policy: Policy, result: ProcessResult, actor: str, now: datetime
) -> None:
    """Erasure requests complete once their deletion record is applied (by apply-deletions)."""
    rows = session.execute(
        select(DsarRequest, DeletionRecord)
        .outerjoin(DeletionRecord, DeletionRecord.id == DsarRequest.deletion_record_id)
        .where(
            DsarRequest.kind == "erasure",
            DsarRequest.status == "processing",
            DsarRequest.deletion_record_id.is_not(None),
        )
        .order_by(DsarRequest.id)
    ).all()
    for request, record in rows:
        if record is None:
            _fail(session, request, "its deletion record no longer exists", actor)
            result.failed[request.reference] = request.last_error or ""
        elif record.deletion_applied_at is not None:
            _complete(session, request, actor, now)
            forget_subject(
                session, policy, request.subject_id, actor=actor, reference=request.reference
            )
            result.completed.append(request.reference)
        elif record.accepted_for_deletion is False:
            note = record.review_note or "its deletion batch was rejected"
            _fail(session, request, f"erasure not accepted in review: {note}", actor)
            result.failed[request.reference] = request.last_error or ""
        else:
            result.waiting.append(request.reference)
    session.commit()


def process_dsar_requests(
    session: Session,
    datamap: DataMap,
    *,
    actor: str,
    execute: bool,
    limit: int = 20,
    now: datetime | None = None,
) -> ProcessResult:
    """Claim approved requests and do their work; then complete erasures that were applied.

    One request's failure is stored on it (``last_error``, status failed) and does not stop
    the others; ``retry_dsar`` puts it back.
    """
    if limit < 1:
        raise InvalidInput(f"--limit must be at least 1, got {limit}")
    policy = datamap.policy
    result = ProcessResult(executed=execute)
    if not execute:
        result.would_process = list(
            session.scalars(
                select(DsarRequest.reference)
                .where(_claimable(now or utcnow(), CLAIM_LEASE))
                .order_by(DsarRequest.requested_at, DsarRequest.id)
            )
        )
        session.rollback()
        return result
    while True:
        ids = claim_requests(session, limit=limit, now=now)
        if not ids:
            break
        result.claimed += len(ids)
        for request in session.scalars(
            select(DsarRequest).where(DsarRequest.id.in_(ids)).order_by(DsarRequest.id)
        ).all():
            started = now or utcnow()
            try:
                if request.kind == "access":
                    _process_access(session, datamap, request, actor, started)
                    result.exported += 1
                    result.completed.append(request.reference)
                else:
                    _process_erasure(session, policy, request, actor, started)
                    result.erasure_scheduled += 1
                session.commit()
            except (ComplianceError, SQLAlchemyError, OSError) as exc:
                session.rollback()
                message = str(exc) if isinstance(exc, ComplianceError) else one_line(exc)
                _fail(session, request, message, actor)
                session.commit()
                result.failed[request.reference] = message
                log_event("dsar.failed", reference=request.reference, error=message)
    _settle_erasures(session, policy, result, actor, now or utcnow())
    return result


# ---------------------------------------------------------------- exports for staff


def open_export_for_download(session: Session, reference: str, *, actor: str) -> Path:
    """The finished export's file, for support staff to hand over; each opening is audited."""
    request = get_dsar(session, reference)
    if request.kind != "access" or request.status != "completed":
        raise Conflict(f"{request.reference} has no finished export (it is {request.status})")
    if not request.export_path or not Path(request.export_path).is_file():
        raise NotFound(f"the export of {request.reference} was removed (exports expire)")
    record_event(
        session,
        actor=actor,
        action="dsar.export_downloaded",
        target_type="dsar_request",
        target_id=request.reference,
        details={"sha256": request.export_sha256},
    )
    session.commit()
    return Path(request.export_path)


# ---------------------------------------------------------------- queries and statistics


def list_dsar_requests(
    session: Session,
    *,
    status: str | None = None,
    kind: str | None = None,
    subject_id: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[DsarRequest]:
    """Newest first, for the dashboard's paginated table."""
    query = select(DsarRequest)
    if status is not None:
        if status not in STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(STATUSES)}, got '{status}'")
        query = query.where(DsarRequest.status == status)
    if kind is not None:
        if kind not in KINDS:
            raise InvalidInput(f"kind must be one of {', '.join(KINDS)}, got '{kind}'")
        query = query.where(DsarRequest.kind == kind)
    if subject_id is not None:
        query = query.where(DsarRequest.subject_id == str(subject_id))
    query = query.order_by(DsarRequest.requested_at.desc(), DsarRequest.id.desc())
    return list(session.scalars(query.limit(limit).offset(offset)))


def due_soon_and_overdue(
    session: Session, *, within_days: int = 7, now: datetime | None = None
) -> list[DsarRequest]:
    """Open requests whose (extended) deadline falls within ``within_days``, or has passed."""
    now = now or utcnow()
    horizon = now + timedelta(days=within_days)
    due = func.coalesce(DsarRequest.extended_due_at, DsarRequest.due_at)
    return list(
        session.scalars(
            select(DsarRequest)
            .where(DsarRequest.status.in_(OPEN_STATUSES), due <= horizon)
            .order_by(due, DsarRequest.id)
        )
    )


@dataclass(frozen=True)
class DsarOverview:
    total: int
    open_count: int
    completed_count: int
    on_time_rate: float | None  # completed on time / completed; None before any completes
    median_days_to_complete: float | None
    overdue: pd.DataFrame  # reference, kind, status, due, days_overdue
    by_status: dict[str, int]


def dsar_overview(session: Session, now: datetime | None = None) -> DsarOverview:
    """What a regulator would ask: how many are open, late, and how fast they complete."""
    now = now or utcnow()
    due = func.coalesce(DsarRequest.extended_due_at, DsarRequest.due_at)
    by_status: dict[str, int] = {
        status: count
        for status, count in session.execute(
            select(DsarRequest.status, func.count()).group_by(DsarRequest.status)
        )
    }
    done = session.execute(
        select(DsarRequest.requested_at, DsarRequest.completed_at, due).where(
            DsarRequest.status == "completed", DsarRequest.completed_at.is_not(None)
        )
    ).all()
    overdue_rows = session.execute(
        select(DsarRequest.reference, DsarRequest.kind, DsarRequest.status, due.label("due"))
        .where(DsarRequest.status.in_(OPEN_STATUSES), due < now)
        .order_by(due)
    ).all()
    on_time = sum(1 for _, completed, d in done if completed <= _aware(d))
    durations = [
        (completed - requested).total_seconds() / 86400 for requested, completed, _ in done
    ]
    import pandas as pd

    overdue = pd.DataFrame(
        [
            {
                "reference": r.reference,
                "kind": r.kind,
                "status": r.status,
                "due": _aware(r.due),
                "days_overdue": (now - _aware(r.due)).days,
            }
            for r in overdue_rows
        ],
        columns=["reference", "kind", "status", "due", "days_overdue"],
    )
    return DsarOverview(
        total=sum(by_status.values()),
        open_count=sum(by_status.get(s, 0) for s in OPEN_STATUSES),
        completed_count=len(done),
        on_time_rate=(on_time / len(done)) if done else None,
        median_days_to_complete=round(statistics.median(durations), 2) if durations else None,
        overdue=overdue,
        by_status={s: by_status.get(s, 0) for s in STATUSES},
    )


def _aware(value: datetime) -> datetime:
    """Raw or coalesced datetimes may come back naive (or as text on SQLite); make them UTC."""
    if isinstance(value, str):  # SQLite returns coalesce() of datetimes as text
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def requests_by_reference(session: Session, references: Sequence[str]) -> list[DsarRequest]:
    return list(
        session.scalars(select(DsarRequest).where(DsarRequest.reference.in_(list(references))))
    )
