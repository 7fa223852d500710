"""GDPR Art. 12(3) deadline arithmetic: one calendar month, clamped to the month's last day."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from compliance.dsar.deadlines import add_months, due_date


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
    assert due_date(received, 1) == at(2025, 3, 31)  # not 28 March
    assert due_date(received, 2) == at(2025, 4, 30)


def test_a_leap_day_plus_a_year_is_the_last_day_of_february() -> None:
    assert add_months(at(2024, 2, 29), 12) == at(2025, 2, 28)
    assert add_months(at(2024, 2, 29), 48) == at(2028, 2, 29)


def test_the_time_of_day_and_zone_are_kept() -> None:
    received = datetime(2025, 5, 10, 23, 59, 59, tzinfo=UTC)
    assert due_date(received) == datetime(2025, 6, 10, 23, 59, 59, tzinfo=UTC)
