"""Reading an SQL system for the scan: its tables and views, their columns, a bounded sample.

Read only, by construction: SQLite files are opened with ``mode=ro`` (a missing file is a
system that is down, never a new empty database), and every PostgreSQL read runs in its own
``READ ONLY`` transaction with a lock and a statement timeout, so no lock is held longer
than one sampled read. Tables are sampled with ``TABLESAMPLE SYSTEM`` on PostgreSQL (a few
pages of a million-row table, not all of it); views, small tables and SQLite with a bounded
``LIMIT``. Whatever cannot be read becomes a note naming it: a scan never stops on one
table, and never prints a value.
"""

from __future__ import annotations

import sqlite3
import time
import warnings
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from sqlalchemy import (
    JSON,
    Boolean,
    Connection,
    Date,
    DateTime,
    Engine,
    Enum,
    Float,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    column,
    create_engine,
    func,
    inspect,
    select,
    table,
    tablesample,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SAWarning, SQLAlchemyError
from sqlalchemy.types import NullType, TypeEngine

from compliance.discovery.names import ColumnKind
from compliance.store.engines import normalise_url

#: Rows sampled per table unless asked otherwise, and the most a scan may ask for.
DEFAULT_SAMPLE = 200
MAX_SAMPLE = 10_000
#: PostgreSQL: each sampled read gives up after this long, and never waits longer than
#: LOCK_TIMEOUT_MS for a lock another session holds (a migration's, say).
STATEMENT_TIMEOUT_MS = 5_000
LOCK_TIMEOUT_MS = 1_000
#: A database that does not answer within this many seconds is reported as down.
CONNECT_TIMEOUT_S = 5
#: A system's reads stop after this many seconds; the tables left are judged by name.
SYSTEM_BUDGET_S = 10.0
#: Below this many estimated rows a table is read with LIMIT: a page sample could miss it all.
_SAMPLE_FROM_ROWS = 20


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type_name: str
    kind: ColumnKind


@dataclass
class TableRead:
    """One table or view: its columns and, once sampled, each readable column's values."""

    name: str
    view: bool
    columns: list[ColumnInfo]
    #: Column -> sampled values, for text and date columns; None while (or if) not read.
    values: dict[str, list[Any]] | None = None
    rows: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def what(self) -> str:
        return f"view {self.name}" if self.view else f"table {self.name}"


@dataclass
class SystemRead:
    """What one SQL system showed the scan; ``error`` when it could not be read at all."""

    name: str
    tables: list[TableRead] = field(default_factory=list)
    error: str | None = None
    notes: list[str] = field(default_factory=list)


def first_line(exc: BaseException) -> str:
    """A database error in one line, without SQLAlchemy's statement and background link."""
    orig = getattr(exc, "orig", None)
    text_ = str(orig if orig is not None else exc).strip()
    return (text_.splitlines() or [type(exc).__name__])[0][:300]


def _sqlite_read_only(path: str) -> Callable[[], sqlite3.Connection]:
    uri = f"file:{quote(path)}?mode=ro"

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(uri, uri=True, timeout=5, check_same_thread=False)

    return connect


def open_read_only(url: str) -> Engine:
    """An engine that cannot write: SQLite read-only by URI, PostgreSQL per transaction."""
    try:
        parsed = normalise_url(make_url(url))
    except ArgumentError:
        raise ValueError("its url is not a database URL") from None
    try:
        if parsed.get_backend_name() == "sqlite":
            database = parsed.database or ""
            if database in ("", ":memory:"):
                raise ValueError("an in-memory SQLite database cannot be scanned")
            return create_engine("sqlite://", creator=_sqlite_read_only(database))
        # A host that does not answer is a system that is down, said within seconds.
        timeout = (
            {"connect_timeout": CONNECT_TIMEOUT_S} if parsed.get_driver_name() == "psycopg2" else {}
        )
        return create_engine(parsed, pool_pre_ping=True, connect_args=timeout)
    except (NoSuchModuleError, ImportError):
        raise ValueError("its url names a driver that is not installed") from None


def column_kind(type_: TypeEngine[Any]) -> ColumnKind:
    """What the scan may do with a column of this reflected type."""
    name = type(type_).__name__.upper()
    if isinstance(type_, LargeBinary) or name in ("BYTEA", "BLOB", "BINARY", "VARBINARY"):
        return ColumnKind.BINARY
    if isinstance(type_, JSON) or name in ("JSON", "JSONB"):
        return ColumnKind.JSON
    if isinstance(type_, Date | DateTime):
        return ColumnKind.TEMPORAL
    if isinstance(type_, Boolean):
        return ColumnKind.OTHER
    if isinstance(type_, Integer | Numeric | Float):
        return ColumnKind.NUMBER
    # INET and CIDR arrive as text; SQLite's untyped columns reflect as NullType.
    if isinstance(type_, String | Text | Enum | NullType) or name in ("INET", "CIDR", "CITEXT"):
        return ColumnKind.TEXT
    return ColumnKind.OTHER


def _type_name(type_: TypeEngine[Any]) -> str:
    try:
        return str(type_.compile())
    except Exception:  # a dialect-specific type that cannot render generically
        return type(type_).__name__


@contextmanager
def _read(engine: Engine) -> Iterator[Connection]:
    """One short read-only transaction, rolled back at the end."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}")
        try:
            yield conn
        finally:
            conn.rollback()


def read_schema(engine: Engine, name: str, *, skip: Collection[str] = ()) -> SystemRead:
    """Every table and view of system ``name`` with its columns (no rows); ``skip`` names
    tables left out."""
    result = SystemRead(name)
    with warnings.catch_warnings():
        # A type SQLAlchemy does not know ("Did not recognize type") reflects as NullType.
        warnings.simplefilter("ignore", SAWarning)
        with _read(engine) as conn:
            inspector = inspect(conn)
            names = [(n, False) for n in inspector.get_table_names()]
            views = inspector.get_view_names()
            if engine.dialect.name == "postgresql":
                views += inspector.get_materialized_view_names()
            names += [(n, True) for n in views]
        for table_name, view in sorted(names):
            if table_name in skip:
                continue
            entry = TableRead(table_name, view, [])
            try:
                with _read(engine) as conn:
                    reflected = inspect(conn).get_columns(table_name)
            except SQLAlchemyError as exc:
                entry.notes.append(f"{entry.what}: its columns cannot be read ({first_line(exc)})")
            else:
                entry.columns = [
                    ColumnInfo(c["name"], _type_name(c["type"]), column_kind(c["type"]))
                    for c in reflected
                ]
            result.tables.append(entry)
    return result


_VALUE_KINDS = (ColumnKind.TEXT, ColumnKind.TEMPORAL)


def _estimated_rows(conn: Connection, name: str) -> float:
    """PostgreSQL's own estimate (pg_class.reltuples); -1 when never analyzed."""
    quoted = conn.dialect.identifier_preparer.quote(name)
    estimate = conn.execute(
        text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:name)"), {"name": quoted}
    ).scalar()
    return float(estimate) if estimate is not None else -1.0


def sample_table(engine: Engine, entry: TableRead, sample: int) -> None:
    """Fill ``entry.values`` with at most ``sample`` rows of its text and date columns."""
    wanted = [c.name for c in entry.columns if c.kind in _VALUE_KINDS]
    if not wanted:
        entry.values = {}
        return
    source = table(entry.name, *[column(c) for c in wanted])
    with _read(engine) as conn:
        if engine.dialect.name == "postgresql" and not entry.view:
            estimate = _estimated_rows(conn, entry.name)
            if estimate > max(_SAMPLE_FROM_ROWS * sample, 1000):
                # A few pages at random: about four times the rows wanted, then LIMIT.
                percent = min(100.0, 400.0 * sample / estimate)
                sampled = tablesample(source, func.system(percent))
                rows = conn.execute(select(*[sampled.c[c] for c in wanted]).limit(sample)).all()
                if len(rows) < sample // 4:  # unlucky pages: the bounded read instead
                    rows = conn.execute(select(*source.c).limit(sample)).all()
            else:
                rows = conn.execute(select(*source.c).limit(sample)).all()
        else:
            rows = conn.execute(select(*source.c).limit(sample)).all()
    entry.rows = len(rows)
    entry.values = {name: [row[i] for row in rows] for i, name in enumerate(wanted)}


def _column_notes(entry: TableRead) -> None:
    """The odd columns of a table, said once per table."""
    binary = [c.name for c in entry.columns if c.kind is ColumnKind.BINARY]
    as_json = [c.name for c in entry.columns if c.kind is ColumnKind.JSON]
    if binary:
        entry.notes.append(f"{entry.what}: binary column(s) {', '.join(binary)} not read")
    if as_json:
        entry.notes.append(f"{entry.what}: JSON column(s) {', '.join(as_json)} judged by name only")
    if entry.values is None:
        return
    if entry.rows == 0 and entry.columns:
        entry.notes.append(f"{entry.what}: empty, judged by column names only")
        return
    empty = [n for n, values in entry.values.items() if all(v is None for v in values)]
    if empty:
        entry.notes.append(
            f"{entry.what}: column(s) {', '.join(empty)} held only NULL in the sample, "
            "judged by name only"
        )


def read_system(
    name: str,
    url: str,
    *,
    sample: int,
    skip: Collection[str] = (),
    budget_s: float = SYSTEM_BUDGET_S,
) -> SystemRead:
    """The system's schema and, unless ``sample`` is 0, a sample of every table and view."""
    try:
        engine = open_read_only(url)
    except ValueError as exc:
        return SystemRead(name, error=f"cannot be opened: {exc}")
    try:
        try:
            result = read_schema(engine, name, skip=skip)
        except SQLAlchemyError as exc:
            return SystemRead(name, error=f"cannot be read: {first_line(exc)}")
        if sample == 0:
            return result
        started = time.monotonic()
        left: list[str] = []
        for entry in result.tables:
            if not entry.columns:
                continue
            if time.monotonic() - started > budget_s:
                left.append(entry.name)
                continue
            try:
                sample_table(engine, entry, sample)
            except SQLAlchemyError as exc:
                entry.notes.append(f"{entry.what}: cannot be read ({first_line(exc)}); "
                                   "judged by column names only")  # fmt: skip
            _column_notes(entry)
        if left:
            result.notes.append(
                f"the {budget_s:.0f} s reading budget ran out: {len(left)} table(s) judged by "
                f"column names only ({', '.join(left[:10])}{', …' if len(left) > 10 else ''})"
            )
        return result
    finally:
        engine.dispose()
