"""Erasing a set of subjects' rows from one table, and what erasing them would do.

The policy says what happens to each mapped table (``on_erasure``, an ``ErasureAction``);
the data map finds the subjects' rows and orders the tables so foreign keys hold. Each
action is carried out by its class in ``ERASERS`` (one statement per table and chunk of
subjects, the same on SQLite and PostgreSQL), so a new action is one class here. Every
caller erases through ``erase``: apply-deletions, replay-erasures and the tests alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from typing import Any, ClassVar

from sqlalchemy import ColumnElement, Connection, delete, update

from compliance.errors import ConfigError
from compliance.policy.datamap import DataMap, TableAction
from compliance.policy.strategies import ErasureAction, get_strategy
from compliance.policy.systems import APP_SYSTEM


class TableEraser:
    """How one ``on_erasure`` action changes a table's rows of a chunk of subjects."""

    action: ClassVar[ErasureAction]

    def erase(
        self, datamap: DataMap, conn: Connection, name: str, where: ColumnElement[bool]
    ) -> int:
        """Change the rows of ``name`` matching ``where``; the number of rows changed."""
        raise NotImplementedError


class DeleteRows(TableEraser):
    action = ErasureAction.DELETE

    def erase(
        self, datamap: DataMap, conn: Connection, name: str, where: ColumnElement[bool]
    ) -> int:
        return conn.execute(delete(datamap.table(name)).where(where)).rowcount


class AnonymizeRows(TableEraser):
    """One UPDATE per chunk: every strategy is a SQL expression on SQLite and PostgreSQL."""

    action = ErasureAction.ANONYMIZE

    def erase(
        self, datamap: DataMap, conn: Connection, name: str, where: ColumnElement[bool]
    ) -> int:
        table = datamap.table(name)
        mapped = datamap.mapped(name)
        values = {}
        for column, strategy in mapped.anonymize.items():
            key = datamap.hash_secret() if strategy == "hash" else None
            keyed = get_strategy(strategy, key, mapped.anonymize_options.get(column))
            expression = keyed.sql(table.c[column], conn.dialect.name)
            if expression is None:
                raise ConfigError(
                    f"tables.{name}.anonymize.{column}: strategy '{strategy}' is not available "
                    f"on {conn.dialect.name}"
                )
            values[column] = expression
        return conn.execute(update(table).where(where).values(**values)).rowcount


class RetainRows(TableEraser):
    """Retained data is never changed: a plan never holds it, and erasing it is a bug."""

    action = ErasureAction.RETAIN

    def erase(
        self, datamap: DataMap, conn: Connection, name: str, where: ColumnElement[bool]
    ) -> int:
        raise AssertionError(f"{name} is retained: nothing may change it")


ERASERS: dict[ErasureAction, TableEraser] = {
    eraser.action: eraser for eraser in (DeleteRows(), AnonymizeRows(), RetainRows())
}


def erase(
    datamap: DataMap, conn: Connection, plan: Sequence[TableAction], keys: Sequence[str]
) -> dict[str, int]:
    """Carry out ``plan`` (one system's steps, in order) for the subjects ``keys`` inside the
    caller's transaction; rows changed per table."""
    affected: dict[str, int] = {}
    for step in plan:
        where = datamap.condition(step.table, datamap.coerce_keys(step.table, keys))
        affected[step.table] = ERASERS[step.action].erase(datamap, conn, step.table, where)
    return affected


def impact(
    datamap: DataMap, conn: Connection | None, tables: Iterable[str], keys: Sequence[str]
) -> list[dict[str, Any]]:
    """Per mapped table, rows erasure would delete, anonymize or keep; changes nothing.

    ``conn`` serves the application database's tables; other systems' tables are counted on
    connections of their own.
    """
    plan = datamap.erasure_plan(tables)
    retained = [
        TableAction(n, ErasureAction.RETAIN, datamap.system_of(n))
        for n in sorted(datamap.policy.retained_tables)
    ]
    rows = []
    opened: dict[str, Connection] = {}
    try:
        for step in [*plan, *retained]:
            if step.system == APP_SYSTEM and conn is not None:
                on = conn
            else:
                if step.system not in opened:
                    opened[step.system] = datamap.engines[step.system].connect()
                on = opened[step.system]
            rows.append(
                {
                    "table": step.table,
                    "action": step.action,
                    "rows": datamap.count(on, step.table, keys),
                    "system": step.system,
                }
            )
    finally:
        for other in opened.values():
            other.close()
    # Referential actions in the application database: cascades it sets off, and plain keys
    # from kept data that block some subjects ("rows" counts subjects there).
    app_plan = [step for step in plan if step.system == APP_SYSTEM]
    cascades, blocks = datamap.plan_cascades(app_plan), datamap.plan_blocks(app_plan)
    if cascades or blocks:
        with nullcontext(conn) if conn is not None else datamap.engine.connect() as on:
            for fk in cascades:
                rows.append(
                    {
                        "table": fk.table,
                        "action": f"{fk.ondelete.lower()} by cascade from {fk.referred_table}",
                        "rows": datamap.referencing_rows(on, fk, keys),
                        "system": APP_SYSTEM,
                    }
                )
            for block in blocks:
                fk = block.foreign_key
                rows.append(
                    {
                        "table": fk.table,
                        "action": f"blocks {block.action} of {fk.referred_table} (subjects)",
                        "rows": len(datamap.referenced_subjects(on, fk, keys)),
                        "system": APP_SYSTEM,
                    }
                )
    return rows
