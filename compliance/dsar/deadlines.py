"""Deadlines: when a request must be answered, under the jurisdiction it falls under.

The one rule for every deadline the desk shows, alerts on and counts. A request is due its
jurisdiction's period after receipt (GDPR Art. 12(3): one calendar month; CCPA: 45 days;
...), plus any extension, counted from receipt; with a working-day rule a deadline on a
weekend or public holiday moves to the next working day. Intake stores the deadline
(``due_at``) and the latest any extension may reach (``latest_due_at``); an extension stores
``extended_due_at``. The deadline in force is the extended one if there is one:
``effective_due_at`` in Python, ``deadline_in_force`` in SQL.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from compliance.policy.jurisdictions import GDPR, Jurisdiction, holiday_calendar
from compliance.policy.model import Policy
from compliance.store.models import DsarRequest, utcnow
from compliance.store.queries import dsar_open

#: A year: the longest a public holiday and weekend run could ever push a deadline.
_MAX_SHIFT_DAYS = 366


def add_months(moment: datetime, months: int) -> datetime:
    """Calendar months, clamped to the month's last day: 31 Jan + 1 = 28 or 29 Feb."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def next_working_day(moment: datetime, country: str | None) -> datetime:
    """``moment``, or the same time on the next day that is neither a weekend day nor a public
    holiday of ``country`` (``GB``, ``GB-ENG``); the day is the UTC date. None: any day counts."""
    if country is None:
        return moment
    days = holiday_calendar(country)
    for _ in range(_MAX_SHIFT_DAYS):
        day = moment.astimezone(UTC).date()
        if day.weekday() not in days.weekend and day not in days:
            return moment
        moment += timedelta(days=1)
    raise ValueError(f"no working day in {country} within a year of {moment:%Y-%m-%d}")


def due_date(
    received_at: datetime,
    jurisdiction: Jurisdiction = GDPR,
    *,
    extension_months: int = 0,
    extension_days: int = 0,
) -> datetime:
    """The deadline of a request received at ``received_at``, extended by the given time.

    Months are counted from receipt, not from a clamped deadline (31 Jan + 1 month, extended
    by 1, is 31 March, not 28 March), then days are added, then a non-working day moves on.
    """
    months = jurisdiction.deadline_months + extension_months
    days = jurisdiction.deadline_days + extension_days
    due = add_months(received_at, months) + timedelta(days=days)
    return next_working_day(due, jurisdiction.working_days)


def latest_due_date(received_at: datetime, jurisdiction: Jurisdiction) -> datetime:
    """The deadline with the longest extension the jurisdiction allows."""
    return due_date(
        received_at,
        jurisdiction,
        extension_months=jurisdiction.extension_months,
        extension_days=jurisdiction.extension_days,
    )


def effective_due_at(request: DsarRequest) -> datetime:
    """The deadline in force: the extended one if there is one."""
    return request.extended_due_at or request.due_at


deadline_in_force = func.coalesce(DsarRequest.extended_due_at, DsarRequest.due_at)
"""``effective_due_at`` in SQL, for every query that selects, counts or orders by deadline."""


def days_left(due: datetime, now: datetime) -> int:
    """Calendar days (UTC) from today to the due date; negative when overdue.

    The one rounding rule for every screen and alert, so a request never shows "-10 days
    left" on one page and "9 days overdue" on another.
    """
    return (due.astimezone(UTC).date() - now.astimezone(UTC).date()).days


def jurisdiction_for(policy: Policy, *, chosen: str | None, country: str | None) -> Jurisdiction:
    """The law a new request falls under: the one chosen at intake; else the one whose
    ``countries`` hold the subject's ``country`` (``[subjects] jurisdiction_column``); else
    ``[dsar] default_jurisdiction``. An unknown chosen name is InvalidInput."""
    if chosen is not None:
        return policy.jurisdiction(chosen)
    code = (country or "").strip().upper()
    for jurisdiction in policy.jurisdictions.values():
        if code and code in jurisdiction.countries:
            return jurisdiction
    return policy.jurisdiction(policy.dsar.default_jurisdiction)


def due_soon_and_overdue(
    session: Session, *, within_days: int = 7, now: datetime | None = None
) -> list[DsarRequest]:
    """Open requests whose (extended) deadline falls within ``within_days``, or has passed."""
    now = now or utcnow()
    horizon = now + timedelta(days=within_days)
    due = deadline_in_force
    return list(
        session.scalars(
            select(DsarRequest).where(dsar_open, due <= horizon).order_by(due, DsarRequest.id)
        )
    )
