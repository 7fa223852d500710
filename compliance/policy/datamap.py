"""The data-map engine: find, erase and count a set of subjects' rows in the application database.

It knows nothing of the demo schema. Every mapped table reaches its subject either by a
``subject_column`` or by a ``via`` chain of any depth; conditions are nested ``IN``
subqueries, so each statement touches a whole chunk of subjects at once and runs the same
on SQLite and PostgreSQL.
"""

from __future__ import annotations

import graphlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BindParameter,
    Column,
    ColumnElement,
    Connection,
    Engine,
    MetaData,
    Select,
    String,
    Table,
    bindparam,
    cast,
    delete,
    func,
    select,
    update,
)

from compliance.errors import ConfigError
from compliance.policy.loader import MappedTable, Policy
from compliance.policy.strategies import get_strategy


@dataclass(frozen=True)
class TableAction:
    table: str
    action: str  # delete | anonymize | retain


class DataMap:
    """The policy's data map bound to the reflected application schema."""

    def __init__(self, policy: Policy, engine: Engine) -> None:
        self.policy = policy
        self.engine = engine
        self.metadata = MetaData()
        names = set(policy.tables)
        for t in policy.tables.values():
            if t.via:
                names.add(t.via.table)
        self.metadata.reflect(bind=engine, only=sorted(names))
        self._selects: dict[tuple[str, frozenset[str]], Any] = {}

    # ------------------------------------------------------------ structure

    def table(self, name: str) -> Table:
        return self.metadata.tables[name]

    def mapped(self, name: str) -> MappedTable:
        return self.policy.tables[name]

    def _parent_column(self, mapped: MappedTable) -> Column[Any]:
        assert mapped.via is not None
        parent = self.table(mapped.via.table)
        if mapped.via.parent_column:
            return parent.c[mapped.via.parent_column]
        return next(iter(parent.primary_key.columns))

    def root(self, name: str) -> MappedTable:
        """The table in the chain that holds the subject key itself."""
        mapped = self.mapped(name)
        while mapped.via is not None:
            mapped = self.mapped(mapped.via.table)
        return mapped

    def subject_column(self, name: str) -> Column[Any]:
        root = self.root(name)
        assert root.subject_column is not None
        return self.table(root.name).c[root.subject_column]

    def coerce_keys(self, name: str, keys: Iterable[str]) -> list[Any]:
        """Subject keys are text in the compliance database; bind them as the column's type."""
        column = self.subject_column(name)
        try:
            python_type = column.type.python_type
        except NotImplementedError:
            return list(keys)
        if python_type is int:
            return [int(k) for k in keys]
        return [str(k) for k in keys]

    def condition(self, name: str, keys: Sequence[Any] | BindParameter[Any]) -> ColumnElement[bool]:
        """Rows of ``name`` that belong to ``keys`` (already coerced), as nested IN subqueries."""
        mapped = self.mapped(name)
        table = self.table(name)
        if mapped.subject_column is not None:
            return table.c[mapped.subject_column].in_(keys)
        assert mapped.via is not None
        parent_col = self._parent_column(mapped)
        return table.c[mapped.via.column].in_(
            select(parent_col).where(self.condition(mapped.via.table, keys))
        )

    def keyed_select(self, name: str) -> tuple[Select[Any], ColumnElement[Any]]:
        """A SELECT over ``name`` joined up its via chain, and the subject key as text."""
        mapped = self.mapped(name)
        table = self.table(name)
        from_clause: Any = table
        while mapped.via is not None:
            parent = self.table(mapped.via.table)
            from_clause = from_clause.join(
                parent, self.table(mapped.name).c[mapped.via.column] == self._parent_column(mapped)
            )
            mapped = self.mapped(mapped.via.table)
        assert mapped.subject_column is not None
        key = cast(self.table(mapped.name).c[mapped.subject_column], String)
        return select().select_from(from_clause), key

    def descendants(self, names: Iterable[str]) -> set[str]:
        """Tables whose via chain passes through any of ``names`` (their rows go with them)."""
        wanted = set(names)
        found = set(wanted)
        for name in self.policy.tables:
            mapped = self.mapped(name)
            while mapped.via is not None:
                if mapped.via.table in wanted:
                    found.add(name)
                    break
                mapped = self.mapped(mapped.via.table)
        return found

    def erasure_plan(self, tables: Iterable[str]) -> list[TableAction]:
        """What erasing ``tables`` does, children first so foreign keys hold."""
        names = self.descendants(tables)
        graph: dict[str, set[str]] = {n: set() for n in names}
        for name in names:
            mapped = self.mapped(name)
            parents = {fk.column.table.name for fk in self.table(name).foreign_keys}
            if mapped.via:
                parents.add(mapped.via.table)
            for parent in parents & names:
                if parent != name:
                    graph[parent].add(name)  # the parent waits for its children
        order = list(graphlib.TopologicalSorter(graph).static_order())
        return [
            TableAction(n, self.mapped(n).on_erasure)
            for n in order
            if self.mapped(n).on_erasure != "retain"
        ]

    # ------------------------------------------------------------ work

    def count(self, conn: Connection, name: str, keys: Sequence[str]) -> int:
        values = self.coerce_keys(name, keys)
        table = self.table(name)
        return (
            conn.scalar(select(func.count()).select_from(table).where(self.condition(name, values)))
            or 0
        )

    def impact(
        self, conn: Connection, tables: Iterable[str], keys: Sequence[str]
    ) -> list[dict[str, Any]]:
        """Per application table, rows erasure would delete, anonymize or keep; changes nothing."""
        plan = self.erasure_plan(tables)
        rows = [
            {"table": a.table, "action": a.action, "rows": self.count(conn, a.table, keys)}
            for a in plan
        ]
        for name in sorted(self.policy.retained_tables):
            rows.append({"table": name, "action": "retain", "rows": self.count(conn, name, keys)})
        return rows

    def erase(
        self, conn: Connection, plan: Sequence[TableAction], keys: Sequence[str]
    ) -> dict[str, int]:
        """Apply the plan to the subjects ``keys`` inside the caller's transaction."""
        affected: dict[str, int] = {}
        for step in plan:
            values = self.coerce_keys(step.table, keys)
            table = self.table(step.table)
            where = self.condition(step.table, values)
            if step.action == "delete":
                affected[step.table] = conn.execute(delete(table).where(where)).rowcount
            elif step.action == "anonymize":
                affected[step.table] = self._anonymize(conn, step.table, where)
            else:  # pragma: no cover - retain never reaches a plan
                raise AssertionError(f"{step.table} is retained")
        return affected

    def _anonymize(self, conn: Connection, name: str, where: ColumnElement[bool]) -> int:
        """One UPDATE per chunk: every strategy is a SQL expression on SQLite and PostgreSQL."""
        table = self.table(name)
        values = {}
        for column, strategy in self.mapped(name).anonymize.items():
            expression = get_strategy(strategy).sql(table.c[column], conn.dialect.name)
            if expression is None:
                raise ConfigError(
                    f"tables.{name}.anonymize.{column}: strategy '{strategy}' is not available "
                    f"on {conn.dialect.name}"
                )
            values[column] = expression
        return conn.execute(update(table).where(where).values(**values)).rowcount

    def subject_rows(
        self, conn: Connection, name: str, keys: Sequence[str], *, exclude: Iterable[str] = ()
    ) -> tuple[list[str], list[Mapping[str, Any]]]:
        """One table's rows of the subjects, minus excluded columns, for exports."""
        cache_key = (name, frozenset(exclude))
        if cache_key not in self._selects:
            # Built once per table: an export runs it for every table, often under load.
            table = self.table(name)
            columns = [c for c in table.columns if c.name not in cache_key[1]]
            pk = list(table.primary_key.columns) or columns[:1]
            keys_param: BindParameter[Any] = bindparam("keys", expanding=True)
            self._selects[cache_key] = (
                [c.name for c in columns],
                select(*columns).where(self.condition(name, keys_param)).order_by(*pk),
            )
        names, statement = self._selects[cache_key]
        result = conn.execute(statement, {"keys": self.coerce_keys(name, keys)})
        return names, [dict(r._mapping) for r in result]
