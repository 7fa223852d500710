"""Deadline arithmetic: GDPR Art. 12(3)'s calendar month (clamped to the month's last day),
and each jurisdiction's own period, extension and working days."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from compliance.dsar.deadlines import add_months, due_date, latest_due_date
from compliance.policy.jurisdictions import GDPR, Jurisdiction, parse_jurisdiction


def at(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("received", "due"),
    [
        (at(2025, 1, 31), at(2025, 2, 28)),  # no 31 February
        (at(2024, 1, 31), at(2024, 2, 29)),  # leap year
        (at(2024, 1, 29), at(2024, 2, 29)),
        (at(2023, 1, 29), at(2023, 2, 28)),
        (at(2025, 3, 31), at(2025, 4, 30)),
        (at(2025, 12, 31), at(2026, 1, 31)),  # across the year
        (at(2025, 6, 15), at(2025, 7, 15)),
    ],
)
def test_a_request_is_due_one_calendar_month_after_it_is_received(
    received: datetime, due: datetime
) -> None:
    assert due_date(received) == due


def test_an_extension_counts_from_receipt_not_from_a_clamped_deadline() -> None:
    received = at(2025, 1, 31)
    assert due_date(received, extension_months=1) == at(2025, 3, 31)  # not 28 March
    assert due_date(received, extension_months=2) == at(2025, 4, 30)


def test_a_leap_day_plus_a_year_is_the_last_day_of_february() -> None:
    assert add_months(at(2024, 2, 29), 12) == at(2025, 2, 28)
    assert add_months(at(2024, 2, 29), 48) == at(2028, 2, 29)


def test_the_time_of_day_and_zone_are_kept() -> None:
    received = datetime(2025, 5, 10, 23, 59, 59, tzinfo=UTC)
    assert due_date(received) == datetime(2025, 6, 10, 23, 59, 59, tzinfo=UTC)


# ---------------------------------------------------------------- per jurisdiction

UK_GDPR = parse_jurisdiction(
    "uk_gdpr", {"deadline_months": 1, "extension_months": 2, "working_days": "GB"}
)
ENGLAND = parse_jurisdiction("uk_gdpr", {"deadline_months": 1, "working_days": "GB-ENG"})
CCPA = parse_jurisdiction("ccpa", {"deadline_days": 45, "extension_days": 45})
LGPD = parse_jurisdiction("lgpd", {"deadline_days": 15})


@pytest.mark.parametrize(
    ("law", "received", "due", "latest"),
    [
        (GDPR, at(2025, 1, 31), at(2025, 2, 28), at(2025, 4, 30)),  # clamped, from receipt
        (GDPR, at(2024, 1, 31), at(2024, 2, 29), at(2024, 4, 30)),
        (GDPR, at(2025, 2, 8), at(2025, 3, 8), at(2025, 5, 8)),  # a Saturday: GDPR keeps it
        (CCPA, at(2026, 1, 10), at(2026, 2, 24), at(2026, 4, 10)),  # 45 days, + 45 more
        (CCPA, at(2024, 2, 1), at(2024, 3, 17), at(2024, 5, 1)),  # across a leap day
        (LGPD, at(2026, 1, 10), at(2026, 1, 25), at(2026, 1, 25)),  # 15 days, no extension
        (LGPD, at(2025, 12, 20), at(2026, 1, 4), at(2026, 1, 4)),
        (UK_GDPR, at(2025, 3, 10), at(2025, 4, 10), at(2025, 6, 10)),  # a Thursday: kept
        (UK_GDPR, at(2025, 1, 8), at(2025, 2, 10), at(2025, 4, 8)),  # Sat 8 Feb → Mon 10 Feb
        # Christmas Day (Thu), Boxing Day (Fri), a weekend: Monday 29 December.
        (UK_GDPR, at(2025, 11, 25), at(2025, 12, 29), at(2026, 2, 25)),
        (UK_GDPR, at(2026, 2, 28), at(2026, 3, 30), at(2026, 5, 28)),  # Sat 28 Mar → Mon 30
        # Late Summer Bank Holiday: England's (GB-ENG), not a holiday in all of the UK.
        (UK_GDPR, at(2025, 7, 25), at(2025, 8, 25), at(2025, 10, 27)),
        (ENGLAND, at(2025, 7, 25), at(2025, 8, 26), at(2025, 8, 26)),
    ],
)
def test_each_jurisdiction_sets_its_deadline_and_the_latest_an_extension_reaches(
    law: Jurisdiction, received: datetime, due: datetime, latest: datetime
) -> None:
    assert due_date(received, law) == due
    assert latest_due_date(received, law) == latest


def test_an_extension_in_days_or_months_counts_from_receipt_and_then_skips_holidays() -> None:
    received = at(2025, 11, 25)
    assert due_date(received, UK_GDPR, extension_days=3) == at(2025, 12, 29)  # Sun 28 → Mon
    assert due_date(received, UK_GDPR, extension_days=6) == at(2025, 12, 31)
    assert due_date(received, CCPA, extension_days=10) == at(2026, 1, 19)
    assert due_date(at(2025, 1, 31), GDPR, extension_days=30) == at(2025, 3, 30)


def test_a_working_day_is_a_day_of_the_utc_date_and_keeps_the_time() -> None:
    late = datetime(2025, 1, 7, 23, 30, tzinfo=UTC)  # due Fri 7 Feb, 23:30 UTC: a working day
    assert due_date(late, UK_GDPR) == datetime(2025, 2, 7, 23, 30, tzinfo=UTC)
    saturday = datetime(2025, 1, 8, 0, 15, tzinfo=UTC)
    assert due_date(saturday, UK_GDPR) == datetime(2025, 2, 10, 0, 15, tzinfo=UTC)
