"""Foreign keys that would carry an erasure where the policy says it must not go.

``retain`` means never changed by any code path, and that includes the database's own
referential actions. A foreign key from a retained (or unmapped) table into a table that
erasure deletes, with ``ON DELETE CASCADE / SET NULL / SET DEFAULT``, would delete or
rewrite retained rows; one into an anonymized column with ``ON UPDATE CASCADE / SET NULL /
SET DEFAULT`` would rewrite them. Both are refused when the policy is checked. A plain
foreign key (``RESTRICT`` / ``NO ACTION``) is safe but *blocks* erasing the subjects it
references: it is reported as a known block, previewed per batch, and worded as such on
the records it stops.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, inspect, text

from compliance.errors import ConfigError
from compliance.policy.model import Policy
from compliance.policy.strategies import ErasureAction
from compliance.policy.systems import APP_SYSTEM

DESTRUCTIVE = frozenset({"CASCADE", "SET NULL", "SET DEFAULT"})


@dataclass(frozen=True)
class ForeignKey:
    """One foreign key of the application database, with its referential actions."""

    name: str | None
    table: str
    columns: tuple[str, ...]
    referred_table: str
    referred_columns: tuple[str, ...]
    ondelete: str  # NO ACTION when the database does not say
    onupdate: str

    @property
    def label(self) -> str:
        named = f"{self.name} " if self.name else ""
        return (
            f"{named}{self.table}({', '.join(self.columns)}) REFERENCES "
            f"{self.referred_table}({', '.join(self.referred_columns)})"
        )


@dataclass(frozen=True)
class Block:
    """A plain foreign key from kept data that stops erasing the rows it references.

    ``action`` is what it stops: ``delete`` of the referenced rows, or ``anonymize`` of
    the referenced ``columns``.
    """

    foreign_key: ForeignKey
    why: str  # "a retain table" | "a table the policy does not map"
    action: ErasureAction
    columns: tuple[str, ...] = ()

    @property
    def advice(self) -> str:
        fk = self.foreign_key
        if self.action == ErasureAction.DELETE:
            change = (
                f'set tables.{fk.referred_table}.on_erasure = "anonymize" instead of delete, '
                "or retain it"
            )
            what = "deleting"
        else:
            change = f"stop anonymizing {fk.referred_table}.{', '.join(self.columns)}"
            what = "anonymizing"
        return (
            f"foreign key {fk.label}: {fk.table} is {self.why}, so its rows keep the "
            f"{fk.referred_table} rows they reference and {what} those fails; {change}"
        )


def _action(value: object) -> str:
    text_value = str(value or "NO ACTION").upper().strip()
    return "NO ACTION" if text_value in ("", "NONE") else text_value


def foreign_keys(engine: Engine) -> list[ForeignKey]:
    """Every foreign key of every table, read from the database itself.

    SQLite's reflection drops the actions of inline ``REFERENCES ... ON DELETE`` clauses,
    so there the PRAGMA that SQLite itself enforces is read instead.
    """
    inspector = inspect(engine)
    found: list[ForeignKey] = []
    tables = inspector.get_table_names()
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            for table in tables:
                rows = conn.execute(text(f'PRAGMA foreign_key_list("{table}")')).all()
                by_id: dict[int, list[object]] = {}
                for row in rows:
                    by_id.setdefault(row[0], []).append(row)
                for group in by_id.values():
                    first = group[0]
                    parent = str(first[2])  # type: ignore[index]
                    referred = [r[4] for r in group]  # type: ignore[index]
                    if any(c is None for c in referred):  # implicit: the parent's primary key
                        referred = inspector.get_pk_constraint(parent)["constrained_columns"]
                    found.append(
                        ForeignKey(
                            None,
                            table,
                            tuple(str(r[3]) for r in group),  # type: ignore[index]
                            parent,
                            tuple(str(c) for c in referred),
                            _action(first[6]),  # type: ignore[index]
                            _action(first[5]),  # type: ignore[index]
                        )
                    )
        return found
    # One catalog query for every table rather than one per table (a job's start-up).
    by_table = inspector.get_multi_foreign_keys()
    for table in tables:
        for fk in by_table.get((None, table), []):
            options = fk.get("options") or {}
            found.append(
                ForeignKey(
                    fk.get("name"),
                    table,
                    tuple(fk["constrained_columns"]),
                    fk["referred_table"],
                    tuple(fk["referred_columns"]),
                    _action(options.get("ondelete")),
                    _action(options.get("onupdate")),
                )
            )
    return found


def _kept(policy: Policy, table: str) -> str | None:
    """Why rows of ``table`` must survive erasure: retained, or unknown to the policy."""
    if table not in policy.tables:
        return "a table the policy does not map"
    if policy.tables[table].on_erasure == ErasureAction.RETAIN:
        return "a retain table"
    return None


def check_foreign_keys(policy: Policy, keys: Sequence[ForeignKey]) -> list[Block]:
    """Raise ConfigError for a key that would carry erasure into kept rows; return blocks.

    Every mapped table that is not retained is erased by some bucket: the built-in
    ``dsar_erasure`` bucket erases them all.
    """
    blocks = []
    for fk in keys:
        why = _kept(policy, fk.table)
        parent = policy.tables.get(fk.referred_table)
        if why is None or parent is None or fk.table == fk.referred_table:
            continue
        if parent.system != APP_SYSTEM:  # these keys are the application database's own
            continue
        if parent.on_erasure == ErasureAction.DELETE:
            if fk.ondelete in DESTRUCTIVE:
                raise ConfigError(
                    f"tables.{fk.referred_table}: foreign key {fk.label} is ON DELETE "
                    f"{fk.ondelete}, so erasing would change rows of {fk.table}, {why}; make "
                    f"it RESTRICT or NO ACTION, or anonymize {fk.referred_table} instead"
                )
            blocks.append(Block(fk, why, ErasureAction.DELETE))
        elif parent.on_erasure == ErasureAction.ANONYMIZE:
            touched = sorted(set(fk.referred_columns) & set(parent.anonymize))
            if touched and fk.onupdate in DESTRUCTIVE:
                raise ConfigError(
                    f"tables.{fk.referred_table}.anonymize.{touched[0]}: foreign key "
                    f"{fk.label} is ON UPDATE {fk.onupdate}, so anonymizing would rewrite "
                    f"rows of {fk.table}, {why}; make it RESTRICT or NO ACTION, or stop "
                    f"anonymizing {fk.referred_table}.{touched[0]}"
                )
            if touched:
                blocks.append(Block(fk, why, ErasureAction.ANONYMIZE, tuple(touched)))
    return blocks
