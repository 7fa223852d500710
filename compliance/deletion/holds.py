"""Legal holds: subjects that must not be erased, whatever a bucket, a batch or a request says.

A hold names a subject by compliance profile, says why (required), who placed it and when,
and may end on a date. While it is active, no record of the subject is created in any
bucket, none is applied even if accepted earlier, an erasure request waits, replaying
erasures leaves the subject alone, and retention cleanup leaves the subject's rows (in
tables linked by ``subject_column`` and through ``via`` alike). Placing and lifting follow
plan, then act: the dry run shows the plan that ``place_hold`` / ``lift_hold`` then carry
out.

Whether a subject is held is decided in one place, ``holds_in_force``: every path that
erases asks it (``held_profiles``, ``held_subjects``, ``on_hold``), so a new kind of hold
(a restriction request, say) is one entry in ``HOLD_KINDS`` and every path honours it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Subquery,
    and_,
    literal,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.orm import Session

from compliance.audit.chain import record_event
from compliance.errors import Conflict, InvalidInput, NotFound
from compliance.free_text import free_text
from compliance.roles import COMPLIANCE_OFFICER, Identity, require
from compliance.store.models import ComplianceProfile, DsarRequest, LegalHold, utcnow
from compliance.store.queries import dsar_open, of_type
from compliance.store.sql import among_ids, rows_changed
from compliance.store.states import DEFAULT_SUBJECT_TYPE, EXPORT_KINDS, HoldKind

# Keys per query: well under SQLite's limit of bound values (PostgreSQL gets one array).
_KEYS_PER_QUERY = 5000


def active_hold(now: datetime) -> ColumnElement[bool]:
    """The SQL condition of a hold in force at ``now``: not lifted, not past its end."""
    return and_(
        LegalHold.lifted_at.is_(None),
        or_(LegalHold.until.is_(None), LegalHold.until > now),
    )


def hold_end(until: date) -> datetime:
    """A hold "until 2027-01-31" covers that whole day (UTC): it ends at the next midnight."""
    return datetime.combine(until + timedelta(days=1), time(), tzinfo=UTC)


def last_day(end: datetime | None) -> date | None:
    """The inclusive last day of a hold, as the officer typed it."""
    return None if end is None else (end - timedelta(days=1)).date()


@dataclass(frozen=True)
class HoldView:
    """One hold as the list, the page and ``--json`` show it."""

    id: int
    profile_id: int
    subject_id: str
    reason: str
    placed_by: str
    placed_at: datetime
    until: date | None
    active: bool
    lifted_at: datetime | None = None
    lifted_by: str | None = None
    lifted_reason: str | None = None
    kind: str = HoldKind.LEGAL
    subject_type: str = DEFAULT_SUBJECT_TYPE  # the kind of data subject held


@dataclass(frozen=True)
class HoldPlan:
    """What placing or lifting a hold would do; the dry run shows it, execution carries it out."""

    action: str  # place | lift
    subject_id: str
    reason: str
    by: str
    profile_id: int | None = None  # None: the subject has no compliance profile yet
    until: date | None = None
    hold_id: int | None = None  # the hold being lifted
    already_held_by: tuple[int, ...] = ()  # active holds the subject has already
    subject_type: str = DEFAULT_SUBJECT_TYPE  # the kind of data subject held


def _check_reason(reason: str | None, what: str) -> str:
    text = free_text(reason, field="reason")
    if text is None:
        raise InvalidInput(f"{what} a legal hold needs a reason")
    return text


def _profile_id(session: Session, subject_type: str, subject_id: str) -> int | None:
    return session.scalar(
        select(ComplianceProfile.id).where(
            of_type(subject_type), ComplianceProfile.subject_id == subject_id
        )
    )


def plan_place_hold(
    session: Session,
    *,
    subject_id: str,
    reason: str,
    by: Identity,
    until: date | None = None,
    now: datetime | None = None,
    subject_type: str = DEFAULT_SUBJECT_TYPE,
) -> HoldPlan:
    """Check the input and say what placing the hold would do; changes nothing.

    ``subject_id`` is the subject's key in the application database, already looked up.
    Only a compliance officer places holds.
    """
    email = require(by, COMPLIANCE_OFFICER, to="place legal holds")
    reason = _check_reason(reason, "placing")
    subject_id = str(subject_id).strip()
    if not subject_id:
        raise InvalidInput("the subject id is empty")
    now = now or utcnow()
    if until is not None and hold_end(until) <= now:
        raise InvalidInput(f"the hold's end date {until.isoformat()} is already past")
    profile_id = _profile_id(session, subject_type, subject_id)
    existing: tuple[int, ...] = ()
    if profile_id is not None:
        existing = tuple(
            session.scalars(
                select(LegalHold.id)
                .where(LegalHold.compliance_profile_id == profile_id, active_hold(now))
                .order_by(LegalHold.id)
            )
        )
    session.rollback()
    return HoldPlan(
        "place", subject_id, reason, email, profile_id, until, already_held_by=existing,
        subject_type=subject_type,
    )  # fmt: skip


def place_hold(session: Session, plan: HoldPlan, *, now: datetime | None = None) -> HoldView:
    """Carry out a placing plan: the hold and its audit event commit together."""
    view = add_hold(session, plan, now=now)
    session.commit()
    return view


def add_hold(session: Session, plan: HoldPlan, *, now: datetime | None = None) -> HoldView:
    """``place_hold`` without the commit, for a caller whose other writes must go with it."""
    if plan.action != "place":
        raise InvalidInput(f"this plan lifts a hold; it cannot place one ({plan.action})")
    now = now or utcnow()
    profile_id = _profile_id(session, plan.subject_type, plan.subject_id)
    if profile_id is None:  # a subject no bucket has found yet: the hold is there first
        profile = ComplianceProfile(
            subject_id=plan.subject_id, subject_type=plan.subject_type, created_at=now,
            updated_at=now,
        )  # fmt: skip
        session.add(profile)
        session.flush()
        profile_id = profile.id
    hold = LegalHold(
        kind=HoldKind.LEGAL,
        compliance_profile_id=profile_id,
        reason=plan.reason,
        placed_by=plan.by,
        placed_at=now,
        until=hold_end(plan.until) if plan.until else None,
    )
    session.add(hold)
    session.flush()
    # The reason is free text that may name people: it stays in legal_holds, not the trail.
    record_event(
        session,
        actor=plan.by,
        action="legal_hold.placed",
        target_type="legal_hold",
        target_id=hold.id,
        details={
            "profile_id": profile_id,
            "until": plan.until.isoformat() if plan.until else None,
        },
    )
    return _view(hold, (plan.subject_type, plan.subject_id), now)


def plan_lift_hold(
    session: Session, hold_id: int, *, reason: str, by: Identity, now: datetime | None = None
) -> HoldPlan:
    """Check that the hold is in force and say what lifting it would do; changes nothing.

    Only a compliance officer lifts holds.
    """
    email = require(by, COMPLIANCE_OFFICER, to="lift legal holds")
    reason = _check_reason(reason, "lifting")
    now = now or utcnow()
    row = session.execute(
        select(LegalHold, ComplianceProfile.subject_type, ComplianceProfile.subject_id)
        .join(ComplianceProfile, ComplianceProfile.id == LegalHold.compliance_profile_id)
        .where(LegalHold.id == hold_id)
    ).first()
    session.rollback()
    if row is None:
        raise NotFound(f"no legal hold with id {hold_id}")
    hold, subject_type, subject_id = row
    if hold.kind == HoldKind.RESTRICTION:
        raise Conflict(
            f"hold {hold_id} is a restriction of processing a data subject asked for: lift it "
            "on its request (lift-restriction), which tells the subject first (GDPR Art. 18(3))"
        )
    if hold.lifted_at is not None:
        when = hold.lifted_at.strftime("%Y-%m-%d %H:%M UTC")
        raise Conflict(f"legal hold {hold_id} was already lifted by {hold.lifted_by} at {when}")
    if hold.until is not None and hold.until <= now:
        raise Conflict(f"legal hold {hold_id} already ended on {last_day(hold.until)}")
    return HoldPlan(
        "lift",
        subject_id,
        reason,
        email,
        hold.compliance_profile_id,
        last_day(hold.until),
        hold_id=hold_id,
        subject_type=subject_type,
    )


def lift_hold(session: Session, plan: HoldPlan, *, now: datetime | None = None) -> HoldView:
    """Carry out a lifting plan; if someone lifted the hold meanwhile, nothing changes."""
    if plan.action != "lift" or plan.hold_id is None:
        raise InvalidInput(f"this plan places a hold; it cannot lift one ({plan.action})")
    now = now or utcnow()
    lifted = rows_changed(
        session.execute(
            update(LegalHold)
            .where(
                LegalHold.id == plan.hold_id,
                LegalHold.lifted_at.is_(None),
                LegalHold.kind == HoldKind.LEGAL,
            )
            .values(lifted_at=now, lifted_by=plan.by, lifted_reason=plan.reason)
        )
    )
    if lifted != 1:
        session.rollback()
        raise Conflict(f"legal hold {plan.hold_id} was lifted meanwhile; nothing changed")
    record_event(
        session,
        actor=plan.by,
        action="legal_hold.lifted",
        target_type="legal_hold",
        target_id=plan.hold_id,
        details={"profile_id": plan.profile_id},
    )
    session.commit()
    hold = session.get(LegalHold, plan.hold_id)
    assert hold is not None
    return _view(hold, (plan.subject_type, plan.subject_id), now)


def _view(hold: LegalHold, subject: tuple[str, str], now: datetime) -> HoldView:
    active = hold.lifted_at is None and (hold.until is None or hold.until > now)
    return HoldView(
        id=hold.id,
        profile_id=hold.compliance_profile_id,
        subject_type=subject[0],
        subject_id=subject[1],
        reason=hold.reason,
        placed_by=hold.placed_by,
        placed_at=hold.placed_at,
        until=last_day(hold.until),
        active=active,
        lifted_at=hold.lifted_at,
        lifted_by=hold.lifted_by,
        lifted_reason=hold.lifted_reason,
        kind=hold.kind,
    )


def list_holds(
    session: Session, *, active_only: bool = False, now: datetime | None = None
) -> list[HoldView]:
    """Every hold, newest first (or only those in force)."""
    now = now or utcnow()
    query = (
        select(LegalHold, ComplianceProfile.subject_type, ComplianceProfile.subject_id)
        .join(ComplianceProfile, ComplianceProfile.id == LegalHold.compliance_profile_id)
        .order_by(LegalHold.id.desc())
    )
    if active_only:
        query = query.where(active_hold(now))
    return [_view(hold, (kind, key), now) for hold, kind, key in session.execute(query)]


def _chunks(values: list[Any]) -> Iterable[list[Any]]:
    for i in range(0, len(values), _KEYS_PER_QUERY):
        yield values[i : i + _KEYS_PER_QUERY]


# ---------------------------------------------------------------- the one hold check


#: The kind of hold this module places and lifts (``HOLD_KINDS``' first entry).
LEGAL_HOLD = HoldKind.LEGAL


@dataclass(frozen=True)
class HoldSource:
    """One kind of hold: how it is named to people, and its holds in force at a moment.

    ``in_force(now)`` selects ``profile_id`` (the compliance profile held) and ``hold_id``.
    """

    words: str  # "legal hold": "on legal hold (hold 3)"
    in_force: Callable[[datetime], Select[int, int]]


def _holds_of_kind(kind: HoldKind) -> Callable[[datetime], Select[int, int]]:
    def in_force(now: datetime) -> Select[int, int]:
        return select(
            LegalHold.compliance_profile_id.label("profile_id"), LegalHold.id.label("hold_id")
        ).where(active_hold(now), LegalHold.kind == kind)

    return in_force


#: Every kind of hold that keeps a subject's data, by name. A new kind is one entry here;
#: ``holds_in_force`` and so every erasing path include it. A restriction of processing
#: (GDPR Art. 18, compliance.dsar.restrictions) is one.
HOLD_KINDS: dict[str, HoldSource] = {
    LEGAL_HOLD: HoldSource("legal hold", _holds_of_kind(HoldKind.LEGAL)),
    HoldKind.RESTRICTION: HoldSource(
        "restriction of processing", _holds_of_kind(HoldKind.RESTRICTION)
    ),
}


@dataclass(frozen=True)
class HoldRef:
    """The hold that keeps a subject's data: its kind and id, as errors and notes name it."""

    kind: str  # a key of HOLD_KINDS
    id: int

    def __str__(self) -> str:
        return f"on {HOLD_KINDS[self.kind].words} (hold {self.id})"


def holds_in_force(now: datetime) -> Subquery:
    """Every hold of every kind in force at ``now``: ``profile_id``, ``kind``, ``hold_id``.

    The one definition of "held"; each check below, and so every path that erases, reads it.
    """
    parts = [
        source.in_force(now).add_columns(literal(kind).label("kind"))
        for kind, source in HOLD_KINDS.items()
    ]
    query = parts[0] if len(parts) == 1 else union_all(*parts)
    return query.subquery("holds_in_force")


def on_hold(subject_type: str, subject_key: Any, now: datetime) -> ColumnElement[bool]:
    """SQL: the subject of ``subject_type`` named by ``subject_key`` (an application key) is
    held at ``now``."""
    holds = holds_in_force(now)
    return (
        select(holds.c.profile_id)
        .join(ComplianceProfile, ComplianceProfile.id == holds.c.profile_id)
        .where(of_type(subject_type), ComplianceProfile.subject_id == subject_key)
        .exists()
    )


def profile_on_hold(profile_id: Any, now: datetime) -> ColumnElement[bool]:
    """SQL: the compliance profile ``profile_id`` (a column or value) is held at ``now``."""
    holds = holds_in_force(now)
    return select(holds.c.profile_id).where(holds.c.profile_id == profile_id).exists()


def held_subjects(
    session: Session,
    subject_ids: Iterable[str] | None = None,
    *,
    now: datetime | None = None,
    subject_type: str | None = None,
) -> set[str]:
    """The subjects (application keys) under a hold in force: among ``subject_ids``, or all;
    of ``subject_type``, or of any kind (a key held as one kind then protects it as every
    kind: more kept, never less)."""
    holds = holds_in_force(now or utcnow())
    query = (
        select(ComplianceProfile.subject_id)
        .join(holds, holds.c.profile_id == ComplianceProfile.id)
        .distinct()
    )
    if subject_type is not None:
        query = query.where(of_type(subject_type))
    if subject_ids is None:
        return set(session.scalars(query))
    held: set[str] = set()
    for chunk in _chunks([str(s) for s in subject_ids]):
        held.update(session.scalars(query.where(among_ids(ComplianceProfile.subject_id, chunk))))
    return held


def hold_on(
    session: Session, subject_type: str, subject_id: str, *, now: datetime
) -> HoldRef | None:
    """A hold in force on one subject, if any: the check every erasing path shares."""
    profile_id = _profile_id(session, subject_type, subject_id)
    if profile_id is None:
        return None
    return held_profiles(session, [profile_id], now=now).get(profile_id)


def held_profiles(
    session: Session, profile_ids: Iterable[int], *, now: datetime | None = None
) -> dict[int, HoldRef]:
    """Among ``profile_ids``, those under a hold in force, each with one hold that keeps it."""
    holds = holds_in_force(now or utcnow())
    held: dict[int, HoldRef] = {}
    for chunk in _chunks(list(profile_ids)):
        for profile_id, kind, hold_id in session.execute(
            select(holds.c.profile_id, holds.c.kind, holds.c.hold_id)
            .where(among_ids(holds.c.profile_id, chunk))
            .order_by(holds.c.kind, holds.c.hold_id)
        ):
            held.setdefault(profile_id, HoldRef(kind, hold_id))
    return held


# ---------------------------------------------------------------- open access requests


def awaiting_access_export(
    session: Session,
    subject_ids: Iterable[str] | None = None,
    *,
    subject_type: str | None = None,
) -> set[str]:
    """Subjects with an open access (or portability) request: their rows are evidence until
    the export is built.

    Among ``subject_ids``, or all such subjects when None; of ``subject_type``, or of any
    kind (more kept, never less).
    """
    query = (
        select(DsarRequest.subject_id)
        .where(DsarRequest.kind.in_(EXPORT_KINDS), dsar_open)
        .distinct()
    )
    if subject_type is not None:
        query = query.where(DsarRequest.subject_type == subject_type)
    if subject_ids is None:
        return set(session.scalars(query))
    waiting: set[str] = set()
    for chunk in _chunks([str(s) for s in subject_ids]):
        waiting.update(session.scalars(query.where(among_ids(DsarRequest.subject_id, chunk))))
    return waiting
