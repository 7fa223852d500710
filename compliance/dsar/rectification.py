"""Rectification (GDPR Art. 16): corrections an officer reviews, carried out in every system.

A request lists corrections: a new value for a column of the data map (``users.full_name``)
or, for anything else, a correction in words. A correction to a column the data map does not
map, to a ``retain`` table (never changed), to a column that links the subject's rows or to
internal data is refused at intake, as is a value the column cannot hold. The new values are
typed text: kept in ``free_texts`` by keyed hash, tied to the subject and erased with them;
the audit trail names only tables, columns and row counts.

Once approved, each SQL system holding a corrected table gets a task carried out by
process-dsar-requests: one UPDATE per table through the data map, exactly what
``plan_rectification`` previews; webhook systems get a ``rectification`` call with the
changes; manual systems, and the corrections in words (``FREE_TEXT``), a task for a person.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Column, Engine, MetaData, Table, update
from sqlalchemy.orm import Session

from compliance.audit.texts import keep_text
from compliance.errors import Conflict, InvalidInput, quoted
from compliance.free_text import free_text
from compliance.policy.datamap import DataMap, open_system_engines
from compliance.policy.model import MappedTable, Policy
from compliance.policy.strategies import ErasureAction
from compliance.store.models import DsarCorrection, DsarRequest, utcnow
from compliance.store.states import DsarKind
from compliance.systems.payloads import corrections_of

#: The most corrections one request carries.
MAX_CORRECTIONS = 50
#: The task of the corrections in words: a person reads them and acts (not a policy system).
FREE_TEXT = "(free text)"
_COLUMN = re.compile(r"^([A-Za-z0-9_]+)\.([A-Za-z0-9_]+)$")
_CREDENTIAL = re.compile(r"password|passwd|secret|token|api_key|otp|private_key", re.I)
_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0")


@dataclass(frozen=True)
class Correction:
    """A correction as asked: ``column`` is ``table.column`` of the data map, or None for a
    correction in words."""

    value: str
    column: str | None = None


def parse_correction(text: str) -> Correction:
    """``table.column=new value`` (the command line's ``--correct``, a line on the page)."""
    column, equals, value = str(text).partition("=")
    if not equals or not column.strip():
        raise InvalidInput(
            f"{{field}} must be TABLE.COLUMN=NEW VALUE, got {quoted(text)}", field="correct"
        )
    return Correction(value.strip(), column.strip())


@dataclass(frozen=True)
class CheckedCorrection:
    """A correction that may be carried out: its table, column and system, or words."""

    value: str
    table: str | None = None
    column: str | None = None
    system: str | None = None


def check_corrections(
    policy: Policy,
    app_engine: Engine,
    kind: str,
    corrections: Sequence[Correction],
    subject_type: str | None = None,
) -> list[CheckedCorrection]:
    """The corrections a request of ``kind`` carries, each checked; refused before any lookup.

    Only a rectification carries corrections, and it needs at least one, each to data of the
    request's kind of subject (``subject_type``; the only kind when there is one).
    """
    if kind != DsarKind.RECTIFICATION:
        if corrections:
            raise InvalidInput(
                f"only a rectification request carries corrections, not {kind}", field="correct"
            )
        return []
    if not corrections:
        raise InvalidInput(
            "a rectification request needs at least one correction: TABLE.COLUMN=NEW VALUE "
            "for a column of the data map, or a correction in words",
            field="correct",
        )
    if len(corrections) > MAX_CORRECTIONS:
        raise InvalidInput(f"at most {MAX_CORRECTIONS} corrections, got {len(corrections)}")
    columns = _Columns(policy, app_engine)
    checked: list[CheckedCorrection] = []
    try:
        for correction in corrections:
            checked.append(_check(policy, columns, correction, subject_type))
    finally:
        columns.close()
    named = [(c.table, c.column) for c in checked if c.column]
    if len(named) != len(set(named)):
        twice = next(f"{t}.{c}" for t, c in named if named.count((t, c)) > 1)
        raise InvalidInput(f"'{twice}' is corrected twice; give one new value", field="correct")
    return checked


def _check(
    policy: Policy, columns: _Columns, correction: Correction, subject_type: str | None
) -> CheckedCorrection:
    value = free_text(correction.value, field="correct")
    if value is None:
        what = f"'{correction.column}'" if correction.column else "a correction in words"
        raise InvalidInput(f"{what} has no new value", field="correct")
    if correction.column is None:
        return CheckedCorrection(value)
    found = _COLUMN.match(correction.column)
    if not found:
        raise InvalidInput(
            f"{{field}}: {quoted(correction.column)} is not TABLE.COLUMN", field="correct"
        )
    table, column = found.groups()
    mapped = policy.tables.get(table)
    name = f"'{table}.{column}'"
    if mapped is None:
        raise InvalidInput(
            f"{name} is not in the data map: only mapped tables are corrected here; "
            "say it in words instead",
            field="correct",
        )
    kind = policy.subject_kind(subject_type).name
    if mapped.subject != kind:  # customer 5's correction never lands on employee 5's row
        raise InvalidInput(
            f"{name} holds data of the '{mapped.subject}' subjects; this request is about "
            f"one of the '{kind}' subjects",
            field="correct",
        )
    if mapped.on_erasure == ErasureAction.RETAIN:
        raise InvalidInput(
            f"{name} is kept under retain ({mapped.legal_basis or 'a legal obligation'}) "
            "and never changed",
            field="correct",
        )
    sql_column = columns.get(mapped, column)
    if sql_column is None:
        raise InvalidInput(f"{name}: {table} has no column {column}", field="correct")
    if column in _links(policy, mapped) or sql_column.primary_key:
        raise InvalidInput(
            f"{name} links the subject's rows; it is never corrected", field="correct"
        )
    if column in mapped.export_exclude or _CREDENTIAL.search(column):
        raise InvalidInput(
            f"{name} is internal or security data, not corrected on request", field="correct"
        )
    typed_value(sql_column, value, name)  # refused now, not when it is carried out
    return CheckedCorrection(value, table, column, mapped.system)


def _links(policy: Policy, mapped: MappedTable) -> set[str]:
    """Columns of ``mapped`` that tie rows to the subject: its own link, and what children's
    ``via`` point at."""
    links = {mapped.subject_column} if mapped.subject_column else set()
    if mapped.via is not None:
        links.add(mapped.via.column)
    links.update(
        child.via.parent_column
        for child in policy.tables.values()
        if child.via is not None and child.via.table == mapped.name and child.via.parent_column
    )
    return links


class _Columns:
    """The corrected tables, reflected from their systems' databases as they are needed."""

    def __init__(self, policy: Policy, app_engine: Engine) -> None:
        self.policy, self.app_engine = policy, app_engine
        self.engines: dict[str, Engine] | None = None
        self.tables: dict[str, Table] = {}

    def get(self, mapped: MappedTable, column: str) -> Column[Any] | None:
        if mapped.name not in self.tables:
            if self.engines is None:
                self.engines = open_system_engines(self.policy, self.app_engine)
            meta = MetaData()
            meta.reflect(bind=self.engines[mapped.system], only=[mapped.name])
            self.tables[mapped.name] = meta.tables[mapped.name]
        return self.tables[mapped.name].c.get(column)

    def close(self) -> None:
        for engine in (self.engines or {}).values():
            if engine is not self.app_engine:
                engine.dispose()


def typed_value(column: Column[Any], text: str, name: str) -> Any:
    """The typed text as the value the column holds; InvalidInput when it cannot hold it."""
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        python_type = str
    try:
        if python_type is bool:
            lowered = text.strip().lower()
            if lowered not in (*_TRUE, *_FALSE):
                raise ValueError
            return lowered in _TRUE
        if python_type is int:
            return int(text.strip())
        if python_type is float:
            return float(text.strip())
        if python_type is Decimal:
            return Decimal(text.strip())
        if python_type is datetime:
            return datetime.fromisoformat(text.strip())
        if python_type is date:
            return date.fromisoformat(text.strip())
    except (ValueError, InvalidOperation):
        raise InvalidInput(
            f"{name} takes a {python_type.__name__}, got {quoted(text)}", field="correct"
        ) from None
    length = getattr(column.type, "length", None)
    if length is not None and len(text) > length:
        raise InvalidInput(f"{name} holds at most {length} characters", field="correct")
    return text


def store_corrections(
    session: Session, request: DsarRequest, corrections: Sequence[CheckedCorrection]
) -> None:
    """Keep the request's corrections, their values as free texts tied to its subject."""
    for correction in corrections:
        session.add(
            DsarCorrection(
                dsar_request_id=request.id,
                table_name=correction.table,
                column_name=correction.column,
                value_hash=keep_text(
                    session,
                    correction.value,
                    subjects=[(request.subject_type, request.subject_id)],
                ),
                created_at=utcnow(),
            )
        )
    session.flush()


@dataclass(frozen=True)
class TableChange:
    """One UPDATE of a rectification: the subject's rows of ``table`` get ``values``."""

    system: str
    table: str
    values: Mapping[str, str]
    rows: int  # the subject's rows it changes, counted when the plan is made


@dataclass(frozen=True)
class RectificationPlan:
    """What approving (and then carrying out) a rectification changes: one UPDATE per table,
    and the corrections in words a person carries out."""

    reference: str
    subject_id: str
    changes: tuple[TableChange, ...]
    in_words: tuple[str, ...]

    @property
    def systems(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.system for c in self.changes))


def plan_rectification(
    session: Session, datamap: DataMap, request: DsarRequest
) -> RectificationPlan:
    """The preview: per table, the columns set and how many of the subject's rows; reads only."""
    views = corrections_of(session, request.id)
    if any(v.removed for v in views):
        raise Conflict(f"{request.reference}'s corrections were removed with its subject")
    by_table: dict[str, dict[str, str]] = {}
    for view in views:
        if view.table is not None and view.column is not None:
            by_table.setdefault(view.table, {})[view.column] = view.value
    changes = []
    for system in datamap.sql_systems():
        tables = [t for t in sorted(by_table) if datamap.system_of(t) == system]
        if not tables:
            continue
        with datamap.engine_for(system).connect() as conn:
            changes += [
                TableChange(system, t, by_table[t], datamap.count(conn, t, [request.subject_id]))
                for t in tables
            ]
    words = tuple(v.value for v in views if v.table is None)
    return RectificationPlan(request.reference, request.subject_id, tuple(changes), words)


def carry_out(datamap: DataMap, plan: RectificationPlan, system: str) -> dict[str, int]:
    """The plan's UPDATEs in ``system``, one per table, in one transaction; rows per table."""
    changed: dict[str, int] = {}
    with datamap.engine_for(system).begin() as conn:
        for change in (c for c in plan.changes if c.system == system):
            table = datamap.table(change.table)
            values = {
                column: typed_value(table.c[column], text, f"'{change.table}.{column}'")
                for column, text in change.values.items()
            }
            keys = datamap.coerce_keys(change.table, [plan.subject_id])
            statement = update(table).where(datamap.condition(change.table, keys)).values(values)
            changed[change.table] = conn.execute(statement).rowcount
    return changed
