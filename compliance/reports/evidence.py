"""Why each subject under review is due: its rule values and a few columns, read live.

An officer accepting a batch should see, per record, the values the bucket's rules judged
(the newest ``last_login_at``, whether the account is closed...) rather than bare ids. The
values are read from the application database for one page of subjects when the page
opens; nothing read here is ever written to the compliance database.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import Connection, String, cast, func, select
from sqlalchemy.exc import DBAPIError

from compliance.deletion.rules import _end_read_only, _read_only, sql_rule_key
from compliance.policy.datamap import DataMap
from compliance.policy.model import AgeRule, SqlRule


@dataclass(frozen=True)
class EvidenceColumn:
    """One column of evidence: its name in the frame and what it shows, in words."""

    name: str
    header: str
    meaning: str
    kind: str  # timestamp | match | value


@dataclass(frozen=True)
class Evidence:
    """Per subject key (text), one column per rule and per review column."""

    frame: pd.DataFrame
    columns: tuple[EvidenceColumn, ...]


def _typed(column: Any, keys: list[str]) -> list[Any]:
    """Keys bound as the key column's type, so its index serves the lookup."""
    try:
        return [int(k) for k in keys] if column.type.python_type is int else keys
    except (NotImplementedError, ValueError):
        return keys


def _rule_columns(datamap: DataMap, bucket_name: str) -> list[tuple[EvidenceColumn, Any]]:
    bucket = datamap.policy.buckets.get(bucket_name)
    if bucket is None:  # dsar_erasure: the subject asked; no rule to show
        return []
    found: list[tuple[EvidenceColumn, Any]] = []
    for i, rule in enumerate(bucket.rules, start=1):
        if isinstance(rule, AgeRule):
            name = f"{rule.table}.{rule.timestamp}"
            meaning = (
                f"newest {rule.timestamp} in {rule.table}; due when older than "
                f"{rule.older_than_days} days"
            )
            found.append((EvidenceColumn(name, name, meaning, "timestamp"), rule))
        else:
            assert isinstance(rule, SqlRule)
            meaning = rule.description or f"matches: {rule.sql}"
            header = rule.description or f"SQL rule {i}"
            found.append((EvidenceColumn(f"rule_{i}", header, meaning, "match"), rule))
    return found


def _by_key(frame: pd.DataFrame, value: Callable[[str], object]) -> pd.Series:
    """A column from a lookup by subject key: one assignment, not a ``.loc`` write per row
    (which costs a page of evidence most of its render time)."""
    return pd.Series([value(k) for k in frame.index], index=frame.index, dtype=object)


def _rule_hits(
    conn: Connection, datamap: DataMap, rule: SqlRule, index: int, keys: list[str], kind: str
) -> set[str]:
    """Which of ``keys`` the SQL rule selects now.

    On PostgreSQL the keys are first compared in the subject key's own type, so an index on
    the rule's column serves the lookup: compared as text, every row the rule selects was
    read and cast (0.24 s per page of records at 1M subjects, issue 13). A rule whose column
    has another type refuses that comparison, and is then compared as text.
    """
    key = sql_rule_key(datamap, rule, index)
    if conn.dialect.name == "postgresql":
        try:
            typed = datamap.coerce_keys(datamap.policy.subject_types[kind].table, keys)
            with conn.begin_nested():
                return {str(k) for k in conn.scalars(select(key).where(key.in_(typed)))}
        except (ValueError, DBAPIError):
            pass  # another type: as text below
    as_text = cast(key, String)
    return {str(k) for k in conn.scalars(select(as_text).where(as_text.in_(keys)))}


def record_evidence(datamap: DataMap, bucket_name: str, subject_keys: Sequence[str]) -> Evidence:
    """The rule values and review columns of ``subject_keys`` (one page), as they are now.

    A timestamp rule shows the subject's newest value there (None: no row, or a NULL that
    never counts as old); an SQL rule shows whether the subject still matches it.
    """
    keys = [str(k) for k in dict.fromkeys(subject_keys)]
    rules = _rule_columns(datamap, bucket_name)
    bucket = datamap.policy.buckets.get(bucket_name)
    review = bucket.review_columns if bucket else ()
    policy = datamap.policy
    kind = policy.bucket_subject(bucket_name)  # None: a bucket gone from the policy
    subjects = policy.subject_types[kind] if kind else next(iter(policy.subject_types.values()))
    columns = [c for c, _ in rules] + [
        EvidenceColumn(f"{subjects.table}.{c}", c, f"{c} of the subject", "value") for c in review
    ]
    frame = pd.DataFrame({"subject_id": keys})
    for column in columns:
        frame[column.name] = None
    if not keys:
        return Evidence(frame, tuple(columns))
    frame = frame.set_index("subject_id")
    with datamap.engine.connect() as conn:
        _read_only(conn)
        try:
            for i, (column, rule) in enumerate(rules):
                if isinstance(rule, AgeRule):
                    base, key = datamap.keyed_select(rule.table)
                    ts = datamap.table(rule.table).c[rule.timestamp]
                    query = (
                        base.add_columns(key.label("k"), func.max(ts).label("v"))
                        .where(datamap.condition(rule.table, datamap.coerce_keys(rule.table, keys)))
                        .group_by(key)
                    )
                    newest = {str(k): value for k, value in conn.execute(query)}
                    frame[column.name] = _by_key(frame, newest.get)
                else:
                    hits = _rule_hits(conn, datamap, rule, i, keys, subjects.name)
                    frame[column.name] = ["yes" if k in hits else "no" for k in frame.index]
            if review and subjects.table in datamap.metadata.tables:
                table = datamap.table(subjects.table)
                key_column = table.c[subjects.key]
                query = select(
                    cast(key_column, String).label("k"), *(table.c[c] for c in review)
                ).where(key_column.in_(_typed(key_column, keys)))
                found = {str(row.k): row._mapping for row in conn.execute(query)}
                for c in review:
                    values = {k: row[c] for k, row in found.items()}
                    frame[f"{subjects.table}.{c}"] = _by_key(frame, values.get)
        finally:
            _end_read_only(conn)
    return Evidence(frame.reset_index(), tuple(columns))
