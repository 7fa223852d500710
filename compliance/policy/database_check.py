"""The policy against the database it describes: every table and column it names exists,
with a type its rules and strategies fit; reflected once and handed on to the data map.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Date, DateTime, Engine, MetaData, Table

from compliance.errors import ConfigError
from compliance.policy.column_fit import check_fit
from compliance.policy.model import (
    DEFAULT_SUBJECT_TYPE,
    AgeRule,
    MappedTable,
    Policy,
    Subjects,
    subjects_section,
)
from compliance.policy.systems import (
    APP_SYSTEM,
)
from compliance.store.schema import reflect_tables


@dataclass
class Reflection:
    """The tables the policy names, reflected once per job: the check and the data map share it.

    Reflecting is most of a job's start-up, so each table is read once, with only the tables
    the policy names (and the ones their foreign keys reach) rather than the whole schema.
    """

    #: Per SQL system, the policy's tables that exist there (missing ones are the check's to
    #: report, so reflecting never fails on them).
    metadatas: dict[str, MetaData]
    #: Per SQL system, which of the policy's tables (and retention tables) it has.
    existing_in: dict[str, set[str]]
    #: The application database's foreign keys, read by the check for the data map to reuse.
    foreign_keys: list[Any] | None = None


def reflect_policy_tables(
    policy: Policy, engine: Engine, engines: Mapping[str, Engine] | None = None
) -> Reflection:
    """Reflect the tables ``policy`` names (and the retention tables) in each SQL system given."""
    systems = {APP_SYSTEM: engine, **{n: e for n, e in (engines or {}).items() if n != APP_SYSTEM}}
    reflection = Reflection({}, {})
    for system, system_engine in systems.items():
        names = {n for n, t in policy.tables.items() if t.system == system}
        if system == APP_SYSTEM:
            names |= {entry.table for entry in policy.retention.values()}
        reflected = reflect_tables(system_engine, names)
        reflection.existing_in[system] = reflected.existing
        reflection.metadatas[system] = reflected.metadata
    return reflection


class _Reflected:
    """The databases the data map names, as reflected: table names and column types."""

    def __init__(self, policy: Policy, reflection: Reflection) -> None:
        self.policy = policy
        self.metadatas = reflection.metadatas
        self.existing_in = reflection.existing_in

    def _system(self, table: str) -> str:
        tables = self.policy.tables
        return tables[table].system if table in tables else APP_SYSTEM

    def where(self, table: str) -> str:
        system = self._system(table)
        return "the application database" if system == APP_SYSTEM else f"system '{system}'"

    def _table(self, table: str) -> Table:
        return self.metadatas[self._system(table)].tables[table]

    def columns(self, table: str) -> dict[str, Any]:
        """Column name -> reflected type."""
        return {c.name: c.type for c in self._table(table).columns}

    def primary_key(self, table: str) -> list[str]:
        return [c.name for c in self._table(table).primary_key.columns]

    def need_column(self, table: str, column: str, key: str) -> None:
        if column not in self.columns(table):
            raise ConfigError(
                f"{key}: table '{table}' has no column '{column}' in {self.where(table)}"
            )

    def need_time(self, table: str, column: str, key: str) -> None:
        # Ages are compared with a cutoff; on a text or number column every row would look
        # "old" (or none would), so a rule must name a date or time column.
        kind = self.columns(table)[column]
        if not isinstance(kind, Date | DateTime):
            raise ConfigError(
                f"{key}: column '{table}.{column}' is {kind}, not a date or time column"
            )


def _key_kind(kind: Any) -> str | None:
    """What a key column holds, as far as matching keys goes: whole numbers, text, or another
    type by name; None where the driver cannot say (the database then decides)."""
    try:
        python_type = kind.python_type
    except NotImplementedError:
        return None
    return {int: "a whole number", str: "text"}.get(python_type, python_type.__name__)


def _check_same_key(db: _Reflected, link: tuple[str, str], target: tuple[str, str],
                    key: str, what: str) -> None:  # fmt: skip
    """Refuse a link whose column holds another kind of key than the column it points at:
    no row would ever match (text '42' is not 42), or PostgreSQL refuses the comparison."""
    link_type, target_type = db.columns(link[0])[link[1]], db.columns(target[0])[target[1]]
    link_kind, target_kind = _key_kind(link_type), _key_kind(target_type)
    if link_kind and target_kind and link_kind != target_kind:
        raise ConfigError(
            f"{key}: '{link[0]}.{link[1]}' is {link_type} ({link_kind}) but {what} "
            f"'{target[0]}.{target[1]}' is {target_type} ({target_kind}); a table links to "
            "its subject by the same kind of key"
        )


def _subject_key_name(subjects: Subjects) -> str:
    if subjects.name == DEFAULT_SUBJECT_TYPE:
        return "the subject key"
    return f"the '{subjects.name}' subject key"


def _check_mapped_table(db: _Reflected, name: str, table: MappedTable) -> None:
    key = f"tables.{name}"
    subjects = db.policy.subject_types[table.subject]
    if table.subject_column:
        db.need_column(name, table.subject_column, f"{key}.subject_column")
        _check_same_key(
            db, (name, table.subject_column), (subjects.table, subjects.key),
            f"{key}.subject_column", _subject_key_name(subjects),
        )  # fmt: skip
    if table.via:
        db.need_column(name, table.via.column, f"{key}.via.column")
        if table.via.parent_column:
            db.need_column(table.via.table, table.via.parent_column, f"{key}.via.parent_column")
        elif len(db.primary_key(table.via.table)) != 1:
            raise ConfigError(
                f"{key}.via.parent_column: '{table.via.table}' has no single-column "
                "primary key, so name the column the via points at"
            )
        parent = table.via.parent_column or db.primary_key(table.via.table)[0]
        _check_same_key(
            db, (name, table.via.column), (table.via.table, parent), f"{key}.via.column",
            "the column it points at",
        )  # fmt: skip
    for column, strategy in table.anonymize.items():
        db.need_column(name, column, f"{key}.anonymize.{column}")
        check_fit(db._table(name), column, strategy, table.anonymize_options.get(column, {}))
    for column in table.export_exclude:
        db.need_column(name, column, f"{key}.export_exclude")
    if table.anonymize and not db.primary_key(name):
        raise ConfigError(f"{key}: anonymizing needs a primary key on '{name}'")


def _check_tables(db: _Reflected, policy: Policy) -> None:
    checked = {n: t for n, t in policy.tables.items() if t.system in db.metadatas}
    for name, table in checked.items():
        if name not in db.existing_in[table.system]:
            raise ConfigError(f"tables.{name}: no such table in {db.where(name)}")
    for subjects in policy.subject_types.values():
        where = subjects_section(subjects)
        db.need_column(subjects.table, subjects.key, f"{where}.key")
        if subjects.email:
            db.need_column(subjects.table, subjects.email, f"{where}.email")
        if subjects.jurisdiction_column:
            db.need_column(
                subjects.table, subjects.jurisdiction_column, f"{where}.jurisdiction_column"
            )
    for name, table in checked.items():
        _check_mapped_table(db, name, table)


def _check_buckets(db: _Reflected, policy: Policy) -> None:
    for bname, bucket in policy.buckets.items():
        subjects = policy.subject_types[bucket.subject]
        hidden = policy.tables[subjects.table].export_exclude
        for i, rule in enumerate(bucket.rules):
            if isinstance(rule, AgeRule):
                key = f"buckets.{bname}.rules[{i}].timestamp"
                db.need_column(rule.table, rule.timestamp, key)
                db.need_time(rule.table, rule.timestamp, key)
        for i, column in enumerate(bucket.review_columns):
            key = f"buckets.{bname}.review_columns[{i}]"
            db.need_column(subjects.table, column, key)
            if column in hidden:
                raise ConfigError(
                    f"{key}: '{column}' is in tables.{subjects.table}.export_exclude, so it is "
                    "never shown to anyone"
                )


def _retention_warnings(db: _Reflected, policy: Policy) -> list[str]:
    """A missing retention table or column skips that entry rather than stopping every job."""
    warnings = []
    for rname, entry in policy.retention.items():
        if entry.table not in db.existing_in[APP_SYSTEM]:
            warnings.append(f"retention.{rname}.table: no table '{entry.table}'; entry skipped")
        elif entry.timestamp not in db.columns(entry.table):
            warnings.append(
                f"retention.{rname}.timestamp: table '{entry.table}' has no column "
                f"'{entry.timestamp}'; entry skipped"
            )
        else:
            db.need_time(entry.table, entry.timestamp, f"retention.{rname}.timestamp")
    return warnings


def check_against_database(
    policy: Policy,
    engine: Engine,
    engines: Mapping[str, Engine] | None = None,
    *,
    reflection: Reflection | None = None,
) -> list[str]:
    """Raise ConfigError for anything the data map names that its database lacks.

    ``engine`` is the application database; ``engines`` holds the other SQL systems by
    name (a system without one is not checked here: ``DataMap`` opens it and reflects).
    Returns warnings for retention entries whose table or column is missing (those
    entries are skipped by retention-cleanup rather than stopping every other job), and
    for foreign keys from kept data that block erasing the rows they reference. A foreign
    key whose ON DELETE / ON UPDATE action would change kept rows is a ConfigError.
    ``reflection`` (from reflect_policy_tables over the same engines) saves reading the
    tables again; the foreign keys read here are kept in it for the data map.
    """
    reflection = reflection or reflect_policy_tables(policy, engine, engines)
    db = _Reflected(policy, reflection)
    _check_tables(db, policy)
    _check_buckets(db, policy)
    # Referential actions are code paths too: none may reach retained or unmapped rows.
    from compliance.policy.cascades import check_foreign_keys, foreign_keys

    if reflection.foreign_keys is None:
        reflection.foreign_keys = foreign_keys(engine)  # the whole database's: read afresh
    warnings = [block.advice for block in check_foreign_keys(policy, reflection.foreign_keys)]
    return warnings + _retention_warnings(db, policy)
