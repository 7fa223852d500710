"""Secure delivery of a finished export: a one-time link plus a 6-digit code, both expiring.

The link carries a token of 32 random bytes; the code is sent in a separate email. Only
the token's SHA-256 and the code's salted PBKDF2 hash are stored, so a copy of the
database gives nobody a download. The token lasts 24 hours, the code 15 minutes; five
wrong codes lock the delivery, and one successful download uses it up.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import NoReturn

from sqlalchemy import case, select, update
from sqlalchemy.orm import Session

from compliance.dsar.downloads import Download, fetch_export
from compliance.dsar.mailer import build_message, send_mail
from compliance.dsar.requests import (
    audit_request,
    backoff,
    complete_request,
    get_dsar,
    has_finished_export,
)
from compliance.errors import ComplianceError, ConfigError, Conflict, NotFound, quoted, stored_error
from compliance.logs import log_event
from compliance.policy.model import Policy
from compliance.roles import COMPLIANCE_OFFICER, SUPPORT, Identity, require
from compliance.storage import STORE_FAULTS, ExportStore, export_store
from compliance.store.models import DsarDelivery, DsarRequest, utcnow
from compliance.store.sql import rows_changed
from compliance.store.states import DeliveryState, DsarStatus
from compliance.urls import url_problem

TOKEN_TTL = timedelta(hours=24)
OTP_TTL = timedelta(minutes=15)
MAX_ATTEMPTS = 5
PBKDF2_ITERATIONS = 200_000
SUBJECT_ACTOR = "data-subject"


class DeliveryRefused(ComplianceError):
    """The link or code does not (or no longer) give access; the message is safe to show."""


@dataclass(frozen=True)
class NewDelivery:
    delivery_id: int | None
    reference: str
    recipient: str
    token: str  # shown once, to be emailed; never stored or logged
    otp: str
    link: str
    token_expires_at: datetime
    otp_expires_at: datetime


@dataclass(frozen=True)
class DeliveryInfo:
    reference: str
    token_expires_at: datetime
    otp_expires_at: datetime
    attempts_left: int


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def hash_otp(otp: str, salt: str, iterations: int = PBKDF2_ITERATIONS) -> str:
    digest = hashlib.pbkdf2_hmac("sha256", otp.encode("utf-8"), bytes.fromhex(salt), iterations)
    return f"pbkdf2_sha256${iterations}${digest.hex()}"


def otp_matches(otp: str, salt: str, stored: str) -> bool:
    try:
        _, iterations, _ = stored.split("$")
        expected = hash_otp(otp.strip(), salt, int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(expected, stored)


#: Where the data subject's download page (dashboard/download.py) is served, unless told.
DOWNLOAD_URL_ENV = "COMPLIANCE_DOWNLOAD_URL"
DEFAULT_DOWNLOAD_URL = "http://localhost:8503"


def download_url_setting(env: Mapping[str, str] | None = None) -> str:
    """``$COMPLIANCE_DOWNLOAD_URL`` or the local page, unchecked: for the command line's
    ``--download-url`` default, which its own type checks under the option's name."""
    env = os.environ if env is None else env
    return env.get(DOWNLOAD_URL_ENV) or DEFAULT_DOWNLOAD_URL


def default_download_url(env: Mapping[str, str] | None = None) -> str:
    """``$COMPLIANCE_DOWNLOAD_URL``, else the local download page: one default for every shell.

    The link goes into the subject's mailbox with a token appended, so a value that is not
    an absolute http(s) URL with a host is a ConfigError naming the variable, wherever the
    link is made (a job, the dashboard, automatic delivery), not only on the command line.
    """
    url = download_url_setting(env)
    problem = url_problem(url)
    if problem:
        raise ConfigError(f"{DOWNLOAD_URL_ENV} {problem}, got {quoted(url)}")
    return url


def create_delivery(
    session: Session,
    reference: str,
    *,
    actor: Identity,
    download_url: str,
    policy: Policy,
    now: datetime | None = None,
) -> NewDelivery:
    """A new link and code for a finished access export; added (audited) but not committed."""
    by = require(actor, SUPPORT, COMPLIANCE_OFFICER, to="deliver DSAR exports")
    return _add_delivery(
        session, export_store(policy), get_dsar(session, reference), by=by,
        download_url=download_url, now=now,
    )  # fmt: skip


def _add_delivery(
    session: Session,
    store: ExportStore,
    request: DsarRequest,
    *,
    by: str,
    download_url: str,
    now: datetime | None,
) -> NewDelivery:
    if not has_finished_export(request):
        raise Conflict(f"{request.reference} has no finished export to deliver ({request.status})")
    if not request.export_path or not store.exists(request.export_path):
        raise NotFound(f"the export of {request.reference} was removed (exports expire)")
    if not request.subject_email:
        raise Conflict(f"{request.reference} has no email address to deliver to")
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    otp = f"{secrets.randbelow(10**6):06d}"
    salt = secrets.token_hex(16)
    delivery = DsarDelivery(
        dsar_request_id=request.id,
        token_hash=hash_token(token),
        otp_hash=hash_otp(otp, salt),
        otp_salt=salt,
        created_at=now,
        token_expires_at=now + TOKEN_TTL,
        otp_expires_at=now + OTP_TTL,
        attempts=0,
    )
    session.add(delivery)
    session.flush()
    audit_request(
        session,
        request,
        "dsar.delivery_created",
        by,
        {
            "delivery_id": delivery.id,
            "token_expires_at": delivery.token_expires_at.isoformat(),
        },
    )
    separator = "&" if "?" in download_url else "?"
    return NewDelivery(
        delivery_id=delivery.id,
        reference=request.reference,
        recipient=request.subject_email,
        token=token,
        otp=otp,
        link=f"{download_url}{separator}token={token}",
        token_expires_at=delivery.token_expires_at,
        otp_expires_at=delivery.otp_expires_at,
    )


def deliver_export(
    session: Session,
    policy: Policy,
    reference: str,
    *,
    actor: Identity,
    download_url: str,
    env: Mapping[str, str] | None = None,
    now: datetime | None = None,
    execute: bool,
) -> NewDelivery:
    """Support's *Send to subject*: email the link and, separately, the code (see ``send_link``).

    With ``execute=False`` every check runs but nothing is stored or sent.
    """
    by = require(actor, SUPPORT, COMPLIANCE_OFFICER, to="deliver DSAR exports")
    request = get_dsar(session, reference)
    return send_link(
        session, policy, request, by=by, download_url=download_url, env=env, now=now,
        execute=execute,
    )  # fmt: skip


def _messages(policy: Policy, new: NewDelivery) -> list[EmailMessage]:
    hours = int(TOKEN_TTL.total_seconds() // 3600)
    minutes = int(OTP_TTL.total_seconds() // 60)
    link_mail = build_message(
        policy.smtp.sender,
        new.recipient,
        f"Your personal data export ({new.reference})",
        f"Hello,\n\nthe copy of your personal data you asked for ({new.reference}) is "
        f"ready.\nDownload it here within {hours} hours:\n\n{new.link}\n\n"
        "You will need the 6-digit code we send in a separate email. The link works "
        "for one download only.\n",
    )
    code_mail = build_message(
        policy.smtp.sender,
        new.recipient,
        f"Your download code ({new.reference})",
        f"Your download code is {new.otp}\n\nIt is valid for {minutes} minutes. "
        "Never share it; we will never ask you for it.\n",
    )
    return [link_mail, code_mail]


def send_link(
    session: Session,
    policy: Policy,
    request: DsarRequest,
    *,
    by: str,
    download_url: str,
    env: Mapping[str, str] | None = None,
    now: datetime | None = None,
    execute: bool,
) -> NewDelivery:
    """Create the delivery and email the link and the code; commit only if the server took them.

    A ``ready`` request is ``completed`` by that acceptance (or the outbox file written), in
    the same commit. A send that fails is rolled back, then kept on the request: an audited
    ``dsar.delivery_failed`` on its timeline, ``last_error``, and one more attempt counted,
    after whose backoff process-dsar-requests tries again (``[dsar] auto_deliver``); the
    error is raised. ``by`` is whoever sends: a person whose role was checked, or a job.
    """
    now = now or utcnow()
    try:
        new = _add_delivery(
            session, export_store(policy), request, by=by, download_url=download_url, now=now
        )
        if not execute:
            session.rollback()
            return new
        send_mail(policy.smtp, _messages(policy, new), env=env)
    except ComplianceError as exc:
        session.rollback()
        if execute:
            # The export store failing is not the subject's send failing: nothing is counted.
            counted = not isinstance(exc, STORE_FAULTS)
            _send_failed(session, policy, request, by, str(exc), now, counted=counted)
        raise
    except BaseException:
        session.rollback()
        raise
    if request.status == DsarStatus.READY:
        complete_request(session, request, by, now)
    session.commit()
    return new


def _send_failed(
    session: Session,
    policy: Policy,
    request: DsarRequest,
    by: str,
    error: str,
    now: datetime,
    *,
    counted: bool = True,
) -> None:
    """Keep a failed send on the request and its timeline (committed), and when to try again."""
    request.attempts = (request.attempts or 0) + (1 if counted else 0)
    details: dict[str, object] = {"attempt": request.attempts, "error": stored_error(error)}
    retries = policy.dsar.auto_deliver and policy.smtp.configured
    if request.status == DsarStatus.READY:
        if retries and request.attempts < policy.dsar.max_attempts:
            retry_at = now + backoff(max(request.attempts, 1))
            request.next_attempt_at = retry_at
            details["next_attempt_at"] = retry_at.isoformat()
            then = f"process-dsar-requests tries again after {retry_at:%Y-%m-%d %H:%M} UTC"
        else:
            request.next_attempt_at = None
            then = "press Send to subject to try again"
        request.last_error = stored_error(f"the link could not be sent: {error}; {then}")
    audit_request(session, request, "dsar.delivery_failed", by, details)
    session.commit()


def _find(session: Session, token: str, *, lock: bool = False) -> tuple[DsarDelivery, DsarRequest]:
    token = (token or "").strip()
    if not token or len(token) > 200:
        raise DeliveryRefused("this download link is not valid")
    wanted = hash_token(token)
    query = (
        select(DsarDelivery, DsarRequest)
        .join(DsarRequest, DsarRequest.id == DsarDelivery.dsar_request_id)
        .where(DsarDelivery.token_hash == wanted)
    )
    if lock and session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(of=DsarDelivery)
    elif lock:
        # SQLite locks no rows: a write first takes the database's write lock for this
        # transaction, so two redemptions of one link run one after the other, as FOR UPDATE
        # makes them on PostgreSQL, and a guess never counts against a state it did not see.
        session.execute(
            update(DsarDelivery)
            .where(DsarDelivery.token_hash == wanted)
            .values(attempts=DsarDelivery.attempts)
        )
    row = session.execute(query).first()
    if row is None or not hmac.compare_digest(row[0].token_hash, wanted):
        raise DeliveryRefused("this download link is not valid")
    return row[0], row[1]


def delivery_state(delivery: DsarDelivery, now: datetime) -> DeliveryState:
    """Used up, locked and expired, in that order: the first says most to the subject."""
    if delivery.downloaded_at is not None:
        return DeliveryState.DOWNLOADED
    if delivery.locked_at is not None:
        return DeliveryState.LOCKED
    if now >= delivery.token_expires_at:
        return DeliveryState.EXPIRED
    return DeliveryState.ACTIVE


_REFUSALS = {
    DeliveryState.DOWNLOADED: "this download link was already used",
    DeliveryState.LOCKED: "this download link is locked after too many wrong codes",
    DeliveryState.EXPIRED: "this download link has expired",
}


def _usable(delivery: DsarDelivery, now: datetime) -> None:
    state = delivery_state(delivery, now)
    if state != DeliveryState.ACTIVE:
        raise DeliveryRefused(_REFUSALS[state])


def check_token(session: Session, token: str, *, now: datetime | None = None) -> DeliveryInfo:
    """Whether a link still works, before asking for the code; raises DeliveryRefused if not."""
    delivery, request = _find(session, token)
    _usable(delivery, now or utcnow())
    info = DeliveryInfo(
        reference=request.reference,
        token_expires_at=delivery.token_expires_at,
        otp_expires_at=delivery.otp_expires_at,
        attempts_left=MAX_ATTEMPTS - delivery.attempts,
    )
    session.rollback()
    return info


def redeem_delivery(
    session: Session, token: str, otp: str, *, policy: Policy, now: datetime | None = None
) -> Download:
    """The export for a valid link and code, once; wrong codes count towards a lock.

    Up to ``[exports] max_download_mb`` it comes as bytes read back from the store and
    checked against the export's SHA-256; a larger one in a bucket as a presigned URL valid
    for 60 seconds, made only now. A store that does not answer raises its ``Outage`` and
    leaves the link unused, to try again later.
    """
    now = now or utcnow()
    delivery, request = _find(session, token, lock=True)
    try:
        _usable(delivery, now)
        if now >= delivery.otp_expires_at:
            raise DeliveryRefused("the code has expired; ask us for a new link")
    except DeliveryRefused:
        session.rollback()
        raise
    if not otp_matches(otp or "", delivery.otp_salt, delivery.otp_hash):
        _refuse_wrong_code(session, delivery, request, now)
    try:
        download = fetch_export(
            export_store(policy), request, max_bytes=policy.exports.max_download_bytes
        )
    except (NotFound, Conflict) as exc:
        session.rollback()
        log_event("dsar.download_refused", reference=request.reference, error=type(exc).__name__)
        gone = isinstance(exc, NotFound) or not has_finished_export(request)
        raise DeliveryRefused(
            "this export is no longer available"
            if gone
            else "this export is too large to download here; please contact us"
        ) from None
    except BaseException:
        session.rollback()  # the link stays unused: the subject tries again later
        raise
    _claim_download(session, delivery, now)
    audit_request(
        session,
        request,
        "dsar.delivery_downloaded",
        SUBJECT_ACTOR,
        {"delivery_id": delivery.id, "sha256": request.export_sha256,
         "presigned_url": download.url is not None},
    )  # fmt: skip
    session.commit()
    return download


def _refuse_wrong_code(
    session: Session, delivery: DsarDelivery, request: DsarRequest, now: datetime
) -> NoReturn:
    """Count the wrong code (committed, so guessing costs attempts) and lock at the limit."""
    attempts = DsarDelivery.attempts + 1
    session.execute(
        update(DsarDelivery)
        .where(DsarDelivery.id == delivery.id)
        .values(
            attempts=attempts,
            locked_at=case((attempts >= MAX_ATTEMPTS, now), else_=DsarDelivery.locked_at),
        )
    )
    session.refresh(delivery)
    locked = delivery.locked_at is not None
    audit_request(
        session,
        request,
        "dsar.delivery_locked" if locked else "dsar.delivery_wrong_code",
        SUBJECT_ACTOR,
        {"delivery_id": delivery.id, "attempts": delivery.attempts},
    )
    session.commit()
    if locked:
        raise DeliveryRefused("too many wrong codes: this download link is now locked")
    left = MAX_ATTEMPTS - delivery.attempts
    raise DeliveryRefused(f"wrong code; {left} attempt(s) left")


def _claim_download(session: Session, delivery: DsarDelivery, now: datetime) -> None:
    """Compare-and-set: of two tabs redeeming one link at once, only one gets the file."""
    claimed = rows_changed(
        session.execute(
            update(DsarDelivery)
            .where(
                DsarDelivery.id == delivery.id,
                DsarDelivery.downloaded_at.is_(None),
                DsarDelivery.locked_at.is_(None),
            )
            .values(downloaded_at=now)
        )
    )
    if claimed != 1:  # another tab won the race for the single download
        session.rollback()
        raise DeliveryRefused("this download link was already used")
