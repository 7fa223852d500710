"""Small SQL helpers every module needs the same way: counting, row counts, UTC values."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, Integer, Result, case, func


def count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """How many rows of the group meet ``condition``; 0 (not NULL) for an empty group."""
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0).cast(Integer)


def rows_changed(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE touched (``Session.execute`` types them as plain results)."""
    return cast(CursorResult[Any], result).rowcount


def aware_utc(value: datetime | str) -> datetime:
    """Aggregates and coalesce() lose the column type (SQLite returns text, some drivers
    naive values); bring them back to aware UTC so they compare with ``utcnow()``."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
