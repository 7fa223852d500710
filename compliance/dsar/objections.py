"""Objections (GDPR Art. 21): a suppression every system is told about, kept for good.

A subject objects to a use of their data (``Scope``). Once the request is accepted the desk
records a suppression (profile id and scope) and tells every webhook and manual system; the
request is completed when each has confirmed. An objection to direct marketing cannot be
refused (Art. 21(3)): logged with an identity check it is accepted at once, and the library
refuses to reject it. A suppression keeps no email or name, only the keyed hash of the
address the subject had, so it survives their erasure and an address imported again later
still matches it (``is_suppressed``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from compliance.audit.chain import record_event
from compliance.csv_files import rows_to_csv
from compliance.deletion.profiles import ensure_profiles
from compliance.emails import check_email
from compliance.errors import InvalidInput, quoted
from compliance.policy.model import Policy
from compliance.policy.strategies import hash_secret
from compliance.store.models import ComplianceProfile, DsarRequest, Suppression
from compliance.store.states import DsarKind

#: How a suppression names an address: the HMAC's algorithm, then the digest.
HASH_PREFIX = "hmac-sha256:"
#: Words of Art. 21(3), on the request's timeline and in the refusal of a rejection.
BY_LAW = "GDPR Art. 21(3): an objection to direct marketing is always accepted"


class Scope(StrEnum):
    """What an objection is to."""

    DIRECT_MARKETING = "direct_marketing"  # Art. 21(2): absolute, never refused
    PROFILING = "profiling"  # Art. 21(1), (2): profiling, for marketing or otherwise
    LEGITIMATE_INTERESTS = "legitimate_interests"  # Art. 21(1): weighed by an officer


SCOPES = tuple(s.value for s in Scope)


def check_scope(kind: str, scope: str | None) -> Scope | None:
    """The scope an objection names; none for any other kind. Refused before any lookup."""
    given = (scope or "").strip()
    if kind != DsarKind.OBJECTION:
        if given:
            raise InvalidInput(f"only an objection has a {{field}}, not {kind}", field="scope")
        return None
    if not given:
        raise InvalidInput(
            f"an objection needs a {{field}}: one of {', '.join(SCOPES)}", field="scope"
        )
    try:
        return Scope(given)
    except ValueError:
        raise InvalidInput(
            f"{{field}} must be one of {', '.join(SCOPES)}, got {quoted(given)}", field="scope"
        ) from None


def never_refused(request: DsarRequest) -> bool:
    """Art. 21(3): an objection to direct marketing must be honoured; no officer may reject it."""
    return request.kind == DsarKind.OBJECTION and request.scope == Scope.DIRECT_MARKETING


def email_hash(address: str, key: bytes) -> str:
    """The keyed hash a suppression keeps of an address (trimmed, lower-cased)."""
    digest = hmac.new(key, address.strip().lower().encode("utf-8"), hashlib.sha256)
    return HASH_PREFIX + digest.hexdigest()


def suppression_key(policy: Policy) -> bytes:
    """COMPLIANCE_HASH_KEY (the demo's public key in demo mode only): without a secret key a
    guessed address could be checked against the list, so none is recorded without one."""
    return hash_secret(demo_mode=policy.dashboard.demo_mode)


def record_suppression(
    session: Session, policy: Policy, request: DsarRequest, *, actor: str, now: datetime
) -> int:
    """The request's suppression, recorded once (a rerun finds it); its id. Audited on the
    request by profile id and scope, in the caller's transaction."""
    assert request.scope is not None
    profiles, _ = ensure_profiles(session, request.subject_type, [request.subject_id], now)
    profile_id = profiles[request.subject_id]
    found = session.scalars(
        select(Suppression).where(
            Suppression.compliance_profile_id == profile_id, Suppression.scope == request.scope
        )
    ).first()
    hashed = email_hash(request.subject_email, suppression_key(policy)) if (
        request.subject_email
    ) else None  # fmt: skip
    if found is not None:
        found.email_hash = found.email_hash or hashed
        return found.id
    row = Suppression(
        compliance_profile_id=profile_id,
        scope=request.scope,
        email_hash=hashed,
        dsar_request_id=request.id,
        recorded_by=actor,
        recorded_at=now,
    )
    session.add(row)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="dsar.suppression_recorded",
        target_type="dsar_request",
        target_id=request.reference,
        details={"suppression_id": row.id, "profile_id": profile_id, "scope": row.scope},
    )
    return row.id


@dataclass(frozen=True)
class SuppressionView:
    """One line of the suppression list: who (by key and profile), what, since when."""

    id: int
    profile_id: int
    subject_id: str
    scope: str
    email_hash: str | None
    reference: str | None
    recorded_at: datetime


COLUMNS = ("id", "profile_id", "subject_id", "scope", "email_hash", "reference", "recorded_at")


def list_suppressions(
    session: Session,
    policy: Policy,
    *,
    scope: str | None = None,
    email: str | None = None,
) -> list[SuppressionView]:
    """The suppression list, oldest first; narrowed to a scope, or to an address (matched by
    its keyed hash: the list itself holds no address)."""
    query = (
        select(Suppression, ComplianceProfile.subject_id, DsarRequest.reference)
        .join(ComplianceProfile, ComplianceProfile.id == Suppression.compliance_profile_id)
        .outerjoin(DsarRequest, DsarRequest.id == Suppression.dsar_request_id)
        .order_by(Suppression.id)
    )
    if scope is not None:
        query = query.where(Suppression.scope == check_scope(DsarKind.OBJECTION, scope))
    if email is not None:
        address = check_email(email, "email")
        query = query.where(Suppression.email_hash == email_hash(address, suppression_key(policy)))
    return [
        SuppressionView(
            row.id,
            row.compliance_profile_id,
            subject,
            row.scope,
            row.email_hash,
            reference,
            row.recorded_at,
        )
        for row, subject, reference in session.execute(query)
    ]


def is_suppressed(session: Session, policy: Policy, *, email: str, scope: str) -> bool:
    """Whether this address (whoever holds it now) objected to ``scope``: what a host
    application asks before it writes to someone."""
    return bool(list_suppressions(session, policy, scope=scope, email=email))


def suppressions_csv(views: Sequence[SuppressionView]) -> bytes:
    """The list as CSV (every text cell neutralised against spreadsheet formulas)."""
    return rows_to_csv(
        COLUMNS,
        (
            [v.id, v.profile_id, v.subject_id, v.scope, v.email_hash, v.reference,
             v.recorded_at.isoformat()]
            for v in views
        ),
    )  # fmt: skip
