"""Whether what an anonymize strategy writes fits the column it writes into.

Checked when the policy is loaded against the reflected database, so a policy that apply would
trip on (``value too long for type character varying(24)``, a NULL into a NOT NULL column)
is refused before any batch is reviewed, not after every record of it failed.

The check goes by the column's *declared* type, on every database alike. SQLite stores a
45-character hash in a ``VARCHAR(24)`` without a word, but the same policy then fails on
PostgreSQL; so a policy that passes here holds on either. A column declared without a type
(SQLite allows it) or of a type SQLAlchemy does not know is not judged: nothing is declared
to compare with.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Column, Enum, String, Table, UniqueConstraint
from sqlalchemy.types import NullType

from compliance.errors import ConfigError
from compliance.policy.fields import key_name
from compliance.policy.strategies import (
    STRATEGIES,
    AnonymizeStrategy,
    RedactStrategy,
    Writes,
    characters,
)

#: The text suggested for ``redact`` when its default does not fit.
SHORT_REDACT_TEXT = "-"


def _unique(table: Table, column: Column[Any]) -> bool:
    """Whether ``column`` alone must hold distinct values (a one-column key or unique index)."""
    if column.primary_key and len(table.primary_key.columns) == 1:
        return True
    groups = [
        [c.name for c in constraint.columns]
        for constraint in table.constraints
        if isinstance(constraint, UniqueConstraint)
    ]
    groups += [[c.name for c in index.columns] for index in table.indexes if index.unique]
    return [column.name] in groups


def _problem(table: Table, column: Column[Any], writes: Writes) -> str | None:
    """Why ``writes`` cannot go into ``column``, or None when it fits."""
    where = f"{table.name}.{column.name}"
    if writes.null:
        return None if column.nullable else f"{where} is NOT NULL"
    kind = column.type
    if isinstance(kind, NullType):
        return None  # declared without a type: nothing to compare with
    if isinstance(kind, Enum):
        if writes.constant is not None and writes.constant in kind.enums:
            return None
        return f"{where} is an enum of {', '.join(repr(e) for e in kind.enums)}"
    if not isinstance(kind, String):
        return f"{where} is {kind} (not text)"
    if kind.length is not None and writes.length is not None and writes.length > kind.length:
        return f"{where} holds at most {characters(kind.length)} ({kind})"
    if writes.constant is not None and _unique(table, column):
        return f"{where} is unique, and it writes the same text into every row"
    return None


def _strategy(name: str, options: Mapping[str, str] | None = None) -> AnonymizeStrategy:
    """The named strategy with its options, to ask what it writes (no key needed for that)."""
    strategy = STRATEGIES[name]
    return type(strategy)(**options) if options else strategy


def _fixes(table: Table, column: Column[Any], strategy: str, problem: str) -> list[str]:
    """What would make the column fit: a change to the column, then the strategies that fit."""
    fixes = []
    if problem.endswith("NOT NULL"):
        fixes.append("allow NULL in the column")
    elif "holds at most" in problem and strategy != "redact":
        fixes.append(f"widen the column to {characters(_strategy(strategy).writes().length)}")
    for other in sorted(STRATEGIES):
        if other != strategy and _problem(table, column, _strategy(other).writes()) is None:
            fixes.append(f"use '{other}'")
    short = RedactStrategy(SHORT_REDACT_TEXT).writes()
    suggested = any(fix == "use 'redact'" for fix in fixes)
    if not suggested and _problem(table, column, short) is None:
        fixes.append(
            f"give redact a text that fits: {key_name(column.name)} = "
            f'{{ strategy = "redact", text = "{SHORT_REDACT_TEXT}" }}'
        )
    if not fixes:
        fixes.append(f"leave '{column.name}' out of anonymize, or delete the rows instead")
    return fixes


def _either(choices: list[str]) -> str:
    return choices[0] if len(choices) == 1 else f"{', '.join(choices[:-1])}, or {choices[-1]}"


def check_fit(table: Table, name: str, strategy: str, options: Mapping[str, str]) -> None:
    """ConfigError naming the column and the fix when ``strategy`` cannot write into it."""
    column = table.c[name]
    writes = _strategy(strategy, options).writes()
    problem = _problem(table, column, writes)
    if problem is None:
        return
    fixes = _either(_fixes(table, column, strategy, problem))
    raise ConfigError(
        f"tables.{key_name(table.name)}.anonymize.{key_name(name)}: '{strategy}' writes "
        f"{writes.words} but {problem}; {fixes}"
    )
