"""What the policy does with a column of personal data: one function, asked by the scan,
the Data map page, the Art. 30 record and the warning every job prints at start-up.

Light on purpose (names only, no value recognisers), so that warning costs nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import MetaData, Table
from sqlalchemy.exc import SQLAlchemyError

from compliance.discovery.names import CATEGORY_LABELS, Category, ColumnKind, personal_by_name
from compliance.discovery.sampling import column_kind, open_read_only
from compliance.policy.model import Policy
from compliance.policy.strategies import ErasureAction
from compliance.policy.systems import APP_SYSTEM
from compliance.store.states import FindingStatus


def finding_status(
    policy: Policy, system: str, table: str, column: str
) -> tuple[FindingStatus, str | None, bool]:
    """What the policy does with ``system.table.column``: its status, what that rests on,
    and whether access exports leave the column out."""
    mapped = policy.tables.get(table)
    if mapped is not None and mapped.system != system:
        mapped = None  # a table of the same name in another database
    excluded = mapped is not None and column in mapped.export_exclude
    accepted = policy.scan.accept.get(f"{system}.{table}.{column}")
    if accepted is not None:
        return FindingStatus.ACCEPTED, accepted, excluded
    if mapped is None:
        return FindingStatus.UNCOVERED, None, False
    if mapped.on_erasure == ErasureAction.DELETE:
        return FindingStatus.DELETED, None, excluded
    if mapped.on_erasure == ErasureAction.RETAIN:
        return FindingStatus.RETAINED, mapped.legal_basis, excluded
    if column in mapped.anonymize:
        return FindingStatus.ANONYMIZED, mapped.anonymize[column], excluded
    return FindingStatus.LEFT_AS_IS, None, excluded


def unmapped_subject_columns(
    policy: Policy, table: str, columns: Iterable[tuple[str, ColumnKind]]
) -> list[tuple[str, Category]]:
    """Personal columns (by name only) of a subjects table that erasure leaves as they are.

    Cheap enough for every job's start: no value is read. Only an anonymized subjects table
    can leave columns behind; accepted columns are not named.
    """
    mapped = policy.tables.get(table)
    if mapped is None or mapped.on_erasure != ErasureAction.ANONYMIZE:
        return []
    left = []
    for name, kind in columns:
        category = personal_by_name(table, name, kind)
        if category is None:
            continue
        status, _, _ = finding_status(policy, APP_SYSTEM, table, name)
        if status is FindingStatus.LEFT_AS_IS:
            left.append((name, category))
    return left


def subject_columns_warning(policy: Policy, table: Table | None) -> str | None:
    """One warning line naming the buckets that erase a subjects table (reflected as
    ``table``) yet leave its personal columns as they are, or None."""
    if table is None:
        return None
    name = table.name
    columns = ((c.name, column_kind(c.type)) for c in table.columns)
    left = unmapped_subject_columns(policy, name, columns)
    if not left:
        return None
    buckets = [n for n, b in policy.buckets.items() if name in b.tables]
    who = ", ".join(f"bucket {b}" for b in buckets) + (" and " if buckets else "")
    named = ", ".join(f"{c} ({CATEGORY_LABELS[k]})" for c, k in left)
    return (
        f"{who}erasure requests leave personal columns of {name} as they are: {named}; "
        f"anonymize them in [tables.{name}] anonymize or accept them in [scan] accept"
    )


def subjects_table_warnings(policy: Policy) -> list[str]:
    """The same warnings for a job that does not reflect the data map (init-db): each
    subjects table's columns, read without writing; none when they cannot be read yet."""
    try:
        engine = open_read_only(policy.app_database_url)
    except ValueError:
        return []
    try:
        meta = MetaData()
        meta.reflect(bind=engine, only=[s.table for s in policy.subject_types.values()])
    except SQLAlchemyError:  # unreachable, or no such table yet
        return []
    finally:
        engine.dispose()
    found = [subject_columns_warning(policy, table) for table in meta.tables.values()]
    return [w for w in found if w]
