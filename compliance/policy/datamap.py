"""The data-map engine: find and count a set of subjects' rows in every SQL system, and the
order erasing them must follow (``compliance.deletion.erase`` carries it out).

The application database is one SQL system; ``[systems.NAME] kind = "sql"`` adds others,
each with its own engine, and every table lives in exactly one of them. A via chain never
leaves its database, so each statement below runs in one system. It knows nothing of the
demo schema. Every mapped table reaches its subject either by a
``subject_column`` or by a ``via`` chain of any depth; conditions are nested ``IN``
subqueries, so each statement touches a whole chunk of subjects at once and runs the same
on SQLite and PostgreSQL.
"""

from __future__ import annotations

import graphlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
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
    and_,
    bindparam,
    cast,
    exists,
    func,
    select,
)

from compliance.errors import InvalidInput, quoted
from compliance.free_text import has_control
from compliance.policy.cascades import (
    DESTRUCTIVE,
    Block,
    ForeignKey,
    check_foreign_keys,
    foreign_keys,
)
from compliance.policy.database_check import Reflection
from compliance.policy.model import MappedTable, Policy
from compliance.policy.strategies import ErasureAction, hash_secret
from compliance.policy.systems import APP_SYSTEM
from compliance.store.sql import among_ids

#: Subject keys of an integer column fit in 64 bits (PostgreSQL BIGINT, SQLite INTEGER).
_MAX_INT_KEY = 2**63 - 1
_WHOLE = re.compile(r"[+-]?[0-9]+")
MAX_KEY_LENGTH = 255


def normalise_subject_key(column: Column[Any], raw: object) -> tuple[str, Any]:
    """A subject id as typed, made the key it names: its text form and the value to bind.

    Trimmed; an integer key is compared as an integer, so " 3 " and "003" are subject 3 and
    one subject never gets two compliance profiles. Anything the column cannot hold is
    refused here rather than reaching the database.
    """
    text = str(raw).strip()
    if not text:
        raise InvalidInput("the subject id is empty")
    if len(text) > MAX_KEY_LENGTH:
        raise InvalidInput(f"the subject id is longer than {MAX_KEY_LENGTH} characters")
    if has_control(text):
        raise InvalidInput("the subject id holds a control character")
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        return text, text
    if python_type is not int:
        return text, text
    if not _WHOLE.fullmatch(text):
        raise InvalidInput(f"subject id {quoted(text)} is not a whole number")
    number = int(text)
    if not -_MAX_INT_KEY - 1 <= number <= _MAX_INT_KEY:
        raise InvalidInput(f"subject id {quoted(text)} is out of range (a 64-bit whole number)")
    return str(number), number


def descendants(policy: Policy, names: Iterable[str]) -> set[str]:
    """``names`` and every table whose via chain passes through one of them."""
    wanted = set(names)
    found = set(wanted)
    for name in policy.tables:
        mapped = policy.tables[name]
        while mapped.via is not None:
            if mapped.via.table in wanted:
                found.add(name)
                break
            mapped = policy.tables[mapped.via.table]
    return found


@dataclass(frozen=True)
class TableAction:
    table: str
    action: ErasureAction
    system: str = APP_SYSTEM


def open_system_engines(
    policy: Policy, app_engine: Engine, given: Mapping[str, Engine] | None = None
) -> dict[str, Engine]:
    """An engine per SQL system: the given ones, else this process's one for the policy's URL."""
    from compliance.store.engines import shared_engine

    engines = {APP_SYSTEM: app_engine}
    for name, system in policy.systems.items():
        if system.is_sql and name not in engines:
            if given and name in given:
                engines[name] = given[name]
            else:
                assert system.url is not None
                engines[name] = shared_engine(system.url, what=f"system '{name}' database")
    return engines


class DataMap:
    """The policy's data map bound to the reflected schema of every SQL system."""

    def __init__(
        self,
        policy: Policy,
        engine: Engine,
        engines: Mapping[str, Engine] | None = None,
        *,
        reflection: Reflection | None = None,
    ) -> None:
        """``reflection`` is the one check_against_database used, so no table is read twice."""
        self.policy = policy
        self.engine = engine  # the application database
        self.engines = open_system_engines(policy, engine, engines)
        given = engines or {}
        self._owned = [
            e for n, e in self.engines.items() if n != APP_SYSTEM and e is not given.get(n)
        ]
        self.metadatas: dict[str, MetaData] = {}
        for system, system_engine in self.engines.items():
            names = {n for n, t in policy.tables.items() if t.system == system}
            if not names:
                continue
            if reflection is not None and system in reflection.metadatas:
                self.metadatas[system] = reflection.metadatas[system]
                continue
            meta = MetaData()
            meta.reflect(bind=system_engine, only=sorted(names))
            self.metadatas[system] = meta
        self.metadata = self.metadatas.get(APP_SYSTEM, MetaData())
        self._selects: dict[tuple[str, frozenset[str]], Any] = {}
        self._hash_secret: bytes | None = None
        if reflection is not None and reflection.foreign_keys is not None:
            self.foreign_keys = reflection.foreign_keys  # seeds the cached property

    def dispose(self) -> None:
        """Close the engines this data map opened itself (not the ones it was given)."""
        for engine in self._owned:
            engine.dispose()

    # ------------------------------------------------------------ structure

    def table(self, name: str) -> Table:
        return self.metadatas[self.system_of(name)].tables[name]

    def system_of(self, name: str) -> str:
        return self.policy.tables[name].system

    def engine_for(self, system: str) -> Engine:
        return self.engines[system]

    def sql_systems(self) -> list[str]:
        """SQL systems holding mapped tables, application database first."""
        return [s for s in self.engines if s in self.metadatas]

    def tables_in(self, system: str) -> list[str]:
        return sorted(n for n, t in self.policy.tables.items() if t.system == system)

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

    def hash_secret(self) -> bytes:
        """The ``hash`` strategy's secret key (see strategies.hash_secret), read once."""
        if self._hash_secret is None:
            self._hash_secret = hash_secret(demo_mode=self.policy.dashboard.demo_mode)
        return self._hash_secret

    def require_keys(self, plan: Iterable[TableAction]) -> None:
        """Refuse before anything changes when a plan anonymizes with ``hash`` and has no key."""
        for step in plan:
            if (
                step.action == ErasureAction.ANONYMIZE
                and "hash" in self.mapped(step.table).anonymize.values()
            ):
                self.hash_secret()
                return

    def subject_key(self, raw: object, subject_type: str | None = None) -> str:
        """The subject id as the compliance database stores it (see normalise_subject_key),
        keyed as ``subject_type``'s subjects are (a policy of one kind may leave it out)."""
        subjects = self.policy.subject_kind(subject_type)
        return normalise_subject_key(self.table(subjects.table).c[subjects.key], raw)[0]

    def subject_details(
        self, subject_type: str, keys: Sequence[str]
    ) -> dict[str, dict[str, str | None]]:
        """What a webhook or a person needs to find each subject of ``subject_type``: the key
        and the email, read before the erasure removes it."""
        subjects = self.policy.subject_type(subject_type)
        found: dict[str, str | None] = {}
        if subjects.email:
            table = self.table(subjects.table)
            key, email = table.c[subjects.key], table.c[subjects.email]
            values = self.coerce_keys(subjects.table, keys)
            with self.engine.connect() as conn:
                rows = conn.execute(select(key, email).where(among_ids(key, values)))
                found = {str(k): e for k, e in rows}
        return {k: self.policy.subject_payload(subject_type, k, found.get(k)) for k in keys}

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
        """Rows of ``name`` that belong to ``keys`` (already coerced), as nested IN subqueries.

        A list of keys binds as one array on PostgreSQL (among_ids): a chunk's thousands of
        keys would otherwise be as many placeholders to render, send and plan per statement.
        """
        mapped = self.mapped(name)
        table = self.table(name)
        if mapped.subject_column is not None:
            column = table.c[mapped.subject_column]
            if isinstance(keys, BindParameter):
                return column.in_(keys)
            return among_ids(column, keys)
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
        return descendants(self.policy, names)

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
            TableAction(n, self.mapped(n).on_erasure, self.system_of(n))
            for n in order
            if self.mapped(n).on_erasure != ErasureAction.RETAIN
        ]

    # ------------------------------------------------------------ foreign keys

    @cached_property
    def foreign_keys(self) -> list[ForeignKey]:
        return foreign_keys(self.engine)

    @cached_property
    def blocks(self) -> list[Block]:
        """Plain foreign keys from kept data into erased rows (dangerous ones raise)."""
        return check_foreign_keys(self.policy, self.foreign_keys)

    def plan_blocks(self, plan: Sequence[TableAction]) -> list[Block]:
        """The blocks that stand in this plan's way."""
        actions = {step.table: step.action for step in plan}
        return [b for b in self.blocks if actions.get(b.foreign_key.referred_table) == b.action]

    def plan_cascades(self, plan: Sequence[TableAction]) -> list[ForeignKey]:
        """Referential actions erasing this plan sets off in other erased tables."""
        deleted = {step.table for step in plan if step.action == ErasureAction.DELETE}
        return [
            fk
            for fk in self.foreign_keys
            if fk.referred_table in deleted
            and fk.ondelete in DESTRUCTIVE
            and fk.table in self.policy.tables
            and fk.table != fk.referred_table
        ]

    def _any_table(self, name: str) -> Table:
        if name not in self.metadata.tables:
            Table(name, self.metadata, autoload_with=self.engine)
        return self.metadata.tables[name]

    def _references(self, fk: ForeignKey) -> ColumnElement[bool]:
        child = self._any_table(fk.table)
        parent = self.table(fk.referred_table)
        pairs = zip(fk.columns, fk.referred_columns, strict=True)
        return and_(*(child.c[c] == parent.c[r] for c, r in pairs))

    def referenced_subjects(
        self, conn: Connection, fk: ForeignKey, keys: Sequence[str]
    ) -> set[str]:
        """Subjects among ``keys`` whose rows of the referred table ``fk``'s rows point at."""
        query, key = self.keyed_select(fk.referred_table)
        found = query.add_columns(key).where(
            among_ids(key, [str(k) for k in keys]), exists().where(self._references(fk))
        )
        return {str(k) for k in conn.scalars(found.distinct())}

    def referencing_rows(self, conn: Connection, fk: ForeignKey, keys: Sequence[str]) -> int:
        """Rows of ``fk``'s table pointing at the subjects' rows of the referred table."""
        child = self._any_table(fk.table)
        parent = self.table(fk.referred_table)
        values = self.coerce_keys(fk.referred_table, keys)
        owned = select(parent).where(self.condition(fk.referred_table, values)).subquery()
        pairs = zip(fk.columns, fk.referred_columns, strict=True)
        return (
            conn.scalar(
                select(func.count())
                .select_from(child)
                .where(exists().where(and_(*(child.c[c] == owned.c[r] for c, r in pairs))))
            )
            or 0
        )

    def plans_by_system(self, tables: Iterable[str]) -> dict[str, list[TableAction]]:
        """The erasure plan split per SQL system, each part in its safe order."""
        plans: dict[str, list[TableAction]] = {}
        for step in self.erasure_plan(tables):
            plans.setdefault(step.system, []).append(step)
        return plans

    # ------------------------------------------------------------ work

    def count(self, conn: Connection, name: str, keys: Sequence[str]) -> int:
        values = self.coerce_keys(name, keys)
        table = self.table(name)
        return (
            conn.scalar(select(func.count()).select_from(table).where(self.condition(name, values)))
            or 0
        )

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
