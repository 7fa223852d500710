"""Small SQL helpers every module needs the same way: counting, row counts, UTC values,
membership in a list of ids."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    ColumnElement,
    CursorResult,
    Integer,
    Result,
    any_,
    bindparam,
    case,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import QueryableAttribute, Session
from sqlalchemy.sql.visitors import InternalTraversal


def count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """How many rows of the group meet ``condition``; 0 (not NULL) for an empty group."""
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0).cast(Integer)


def dialect_insert(session: Session) -> Any:
    """The session's dialect's INSERT, for ON CONFLICT (SQLite and PostgreSQL share the syntax)."""
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def rows_changed(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE touched (``Session.execute`` types them as plain results)."""
    return cast(CursorResult[Any], result).rowcount


def aware_utc(value: datetime | str) -> datetime:
    """Aggregates and coalesce() lose the column type (SQLite returns text, some drivers
    naive values); bring them back to aware UTC so they compare with ``utcnow()``."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def among_ids(
    column: ColumnElement[Any] | QueryableAttribute[Any], ids: Iterable[Any]
) -> ColumnElement[bool]:
    """``column`` is one of ``ids``: ``= ANY(:array)`` on PostgreSQL, ``IN (…)`` on SQLite.

    A chunk's thousands of ids travel as one array parameter on PostgreSQL, so the statement
    text stays the same whatever their number and neither side renders nor parses thousands
    of placeholders; SQLite has no arrays and keeps the expanding IN.
    """
    if isinstance(column, QueryableAttribute):
        column = column.__clause_element__()
    return _AmongIds(column, ids)


class _AmongIds(ColumnElement[bool]):
    type = Boolean()
    inherit_cache = True
    # A comparison already: no "= 1" around it on SQLite, which would hide it from indexes.
    _is_implicitly_boolean = True
    # The column and the parameter (not its values) make the cache key, as for in_().
    _traverse_internals = [  # noqa: RUF012 (SQLAlchemy reads it from the class)
        ("column", InternalTraversal.dp_clauseelement),
        ("values", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, column: ColumnElement[Any], ids: Iterable[Any]) -> None:
        self.column = column
        self.values = bindparam(None, list(ids), type_=ARRAY(column.type))


@compiles(_AmongIds)
def _in_list(element: _AmongIds, compiler: Any, **kw: Any) -> str:
    # Same key as the array parameter: a cached statement finds its values by that key.
    values = element.values
    expanding = bindparam(values.key, values.value, type_=element.column.type, expanding=True)
    return str(compiler.process(element.column.in_(expanding), **kw))


@compiles(_AmongIds, "postgresql")
def _any_array(element: _AmongIds, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.column == any_(element.values), **kw))
