"""GDPR Art. 12(3) deadlines: one calendar month from receipt, extendable by two more."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime

from compliance.store.models import DsarRequest

MAX_EXTENSION_MONTHS = 2


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


def days_left(due: datetime, now: datetime) -> int:
    """Calendar days (UTC) from today to the due date; negative when overdue.

    The one rounding rule for every screen and alert, so a request never shows "-10 days
    left" on one page and "9 days overdue" on another.
    """
    return (due.astimezone(UTC).date() - now.astimezone(UTC).date()).days
