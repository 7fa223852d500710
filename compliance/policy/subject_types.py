"""Kinds of data subject: ``[subjects]`` (one kind, ``default``) or ``[subjects.NAME]``.

A company's customers, employees and job applicants live in their own tables, keyed their
own way. Each mapped table holds one kind's data and each bucket erases one kind; this is
where a policy's kinds are read and every table and bucket is given its kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from compliance.errors import ConfigError
from compliance.policy.fields import Field, check_name, expect, key_name, read_section
from compliance.policy.model import AgeRule, Bucket, MappedTable, Subjects, subjects_section
from compliance.policy.systems import APP_SYSTEM
from compliance.store.states import DEFAULT_SUBJECT_TYPE

_SUBJECTS_FIELDS = (
    Field("table", default=Subjects.table),
    Field("key", default=Subjects.key),
    Field("email"),
    Field("jurisdiction_column"),
)


def parse_subject_types(raw: Any) -> dict[str, Subjects]:
    """``[subjects]`` (one kind of data subject, named ``default``) or ``[subjects.NAME]``
    sections, one per kind: customers, employees, job applicants each in their own table."""
    expect(raw, dict, "subjects")
    named = [k for k, v in raw.items() if isinstance(v, dict)]
    if not named:
        return {DEFAULT_SUBJECT_TYPE: Subjects(**read_section(raw, _SUBJECTS_FIELDS, "subjects"))}
    plain = [k for k in raw if k not in named]
    if plain:
        raise ConfigError(
            f"subjects.{key_name(plain[0])}: either one [subjects] section or one "
            "[subjects.NAME] section per kind of data subject, not both"
        )
    types: dict[str, Subjects] = {}
    for name in named:
        check_name(name, "subjects")
        key = f"subjects.{key_name(name)}"
        if "table" not in raw[name]:
            raise ConfigError(f"{key}.table: missing (the table listing these subjects)")
        types[name] = Subjects(name=name, **read_section(raw[name], _SUBJECTS_FIELDS, key))
    tables = [s.table for s in types.values()]
    for subjects in types.values():
        if tables.count(subjects.table) > 1:
            raise ConfigError(
                f"subjects.{key_name(subjects.name)}.table: '{subjects.table}' lists another "
                "kind of data subject too; each kind has its own table"
            )
    return types


def check_subjects_table(tables: Mapping[str, MappedTable], subjects: Subjects) -> None:
    if subjects.table not in tables:
        raise ConfigError(
            f"{subjects_section(subjects)}.table: '{subjects.table}' is not in the data map "
            "([tables])"
        )
    if tables[subjects.table].system != APP_SYSTEM:
        raise ConfigError(
            f"tables.{subjects.table}.system: the subjects table lives in the application database"
        )
    if tables[subjects.table].subject_column != subjects.key:
        raise ConfigError(
            f"tables.{subjects.table}.subject_column: must be the subject key '{subjects.key}'"
        )


def assign_subjects(
    tables: Mapping[str, MappedTable], types: Mapping[str, Subjects]
) -> dict[str, MappedTable]:
    """Each table's kind of data subject: its root's (the table its via chain ends at), which
    is the kind whose subjects table it is, the kind it names, or the only kind there is."""
    listing = {s.table: s.name for s in types.values()}
    known = ", ".join(types)

    def root_subject(root: MappedTable) -> str:
        key = f"tables.{key_name(root.name)}.subject"
        if root.subject and root.subject not in types:
            raise ConfigError(f"{key}: '{root.subject}' is not a kind of data subject ({known})")
        if root.name in listing and root.subject and root.subject != listing[root.name]:
            raise ConfigError(
                f"{key}: '{root.name}' lists the '{listing[root.name]}' subjects, so its data "
                f"is theirs, not '{root.subject}'"
            )
        if root.subject or root.name in listing:
            return root.subject or listing[root.name]
        if len(types) == 1:
            return next(iter(types))
        raise ConfigError(
            f"{key}: missing; with more than one kind of data subject, a table linked by "
            f"subject_column names whose data it holds (one of {known})"
        )

    assigned = {}
    for name, table in tables.items():
        root = table
        while root.via is not None:
            root = tables[root.via.table]
        subject = root_subject(root)
        if table.subject and table.subject != subject:
            raise ConfigError(
                f"tables.{key_name(name)}.subject: '{table.subject}', but its via chain ends at "
                f"'{root.name}', which holds '{subject}' data"
            )
        assigned[name] = replace(table, subject=subject)
    return assigned


def bucket_subject(bucket: Bucket, tables: Mapping[str, MappedTable]) -> Bucket:
    """A bucket erases one kind of data subject: that of its tables, which must agree."""
    key = f"buckets.{key_name(bucket.name)}"
    kinds = {t: tables[t].subject for t in bucket.tables}
    subject = kinds[bucket.tables[0]]
    for table, kind in kinds.items():
        if kind != subject:
            raise ConfigError(
                f"{key}.tables: '{bucket.tables[0]}' holds '{subject}' data and '{table}' "
                f"holds '{kind}' data; a bucket erases one kind of data subject"
            )
    if bucket.subject and bucket.subject != subject:
        raise ConfigError(
            f"{key}.subject: '{bucket.subject}', but its tables hold '{subject}' data"
        )
    for i, rule in enumerate(bucket.rules):  # an age rule finds its subjects by its table
        if isinstance(rule, AgeRule) and tables[rule.table].subject != subject:
            raise ConfigError(
                f"{key}.rules[{i}].table: '{rule.table}' holds "
                f"'{tables[rule.table].subject}' data, but the bucket erases '{subject}' "
                "subjects: its keys would name other people"
            )
    return replace(bucket, subject=subject)
