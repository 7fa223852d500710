"""The record of processing activities (GDPR Art. 30(1)), generated from the policy.

The policy file already knows most of what Art. 30 asks: each bucket is a processing
activity (its tables, its rules and thus its time limits for erasure, the systems it
reaches), the retained tables are kept for a legal obligation named by their
``legal_basis``, and the last scan knows which categories of personal data each table
holds. What only a person can say comes from optional keys: ``[buckets.X] purpose``,
``data_subjects``, ``recipients``, ``transfers`` and ``[records] controller``,
``dpo_contact``, ``security_measures``. A key not set is shown as not set, never guessed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

from compliance.csv_files import rows_to_csv
from compliance.discovery.findings import StoredFinding
from compliance.discovery.names import CATEGORY_LABELS, ColumnKind, personal_by_name
from compliance.errors import InvalidInput
from compliance.policy.datamap import descendants
from compliance.policy.model import AgeRule, Bucket, MappedTable, Policy
from compliance.policy.strategies import ErasureAction
from compliance.policy.systems import APP_SYSTEM
from compliance.store.models import utcnow

FORMATS = ("md", "csv", "json")
ERASURE_REQUESTS = "on the data subject's erasure request (Art. 17), once an officer approves it"


@dataclass(frozen=True)
class ProcessingActivity:
    """One processing activity: a bucket, or mapped tables no bucket erases."""

    name: str
    description: str
    purpose: str | None
    data_subjects: tuple[str, ...]
    personal_data: tuple[str, ...]
    recipients: tuple[str, ...]
    transfers: tuple[str, ...]
    erasure_time_limits: tuple[str, ...]
    legal_bases: tuple[str, ...]
    tables: tuple[str, ...]


@dataclass(frozen=True)
class RecordOfProcessing:
    controller: str | None
    dpo_contact: str | None
    security_measures: tuple[str, ...]
    generated_at: datetime
    #: Where the categories of personal data come from: the last scan, or column names only.
    categories_source: str
    activities: tuple[ProcessingActivity, ...]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _system_label(policy: Policy, name: str) -> str:
    system = policy.systems[name]
    what = f": {_one_line(system.description)}" if system.description else ""
    return f"system {name} ({system.kind}{what})"


def _categories(
    policy: Policy, tables: Iterable[str], findings: Sequence[StoredFinding]
) -> tuple[str, ...]:
    """Per table, the last scan's categories; and the categories of the columns the policy
    names itself (anonymized, excluded from exports), which need no scan."""
    found: dict[str, set[str]] = {}
    for name in tables:
        mapped = policy.tables[name]
        for f in findings:
            if f.system == mapped.system and f.table == name:
                found.setdefault(f.label, set()).add(f"{name}.{f.column}")
        for column in (*mapped.anonymize, *mapped.export_exclude):
            category = personal_by_name(name, column, ColumnKind.TEXT)
            if category is not None:
                found.setdefault(CATEGORY_LABELS[category], set()).add(f"{name}.{column}")
    return tuple(f"{label} ({', '.join(sorted(where))})" for label, where in sorted(found.items()))


def bucket_rules_text(bucket: Bucket) -> str:
    """A bucket's rules in words: when its subjects' data becomes due for erasure."""
    limits = []
    for rule in bucket.rules:
        if isinstance(rule, AgeRule):
            limits.append(
                f"{rule.older_than_days} days after the newest {rule.table}.{rule.timestamp}"
            )
        else:
            limits.append(f"while: {_one_line(rule.description or rule.sql)}")
    text = "erased, after an officer's review, when all hold: " + "; ".join(limits)
    if bucket.grace_days:
        text += f" (and {bucket.grace_days} days' grace)"
    return text


def _retention_text(policy: Policy, tables: Iterable[str]) -> list[str]:
    names = set(tables)
    return [
        f"{entry.table} rows deleted {entry.days} days after their {entry.timestamp} "
        f"([retention.{entry.name}])"
        for entry in policy.retention.values()
        if entry.table in names
    ]


def _kept(tables: Iterable[MappedTable]) -> list[str]:
    return [f"{t.name}: kept, {_one_line(t.legal_basis or 'no legal basis given')}"
            for t in tables if t.on_erasure == ErasureAction.RETAIN]  # fmt: skip


def _systems_of(policy: Policy, tables: Iterable[str]) -> list[str]:
    held = {policy.tables[t].system for t in tables} - {APP_SYSTEM}
    return [_system_label(policy, n) for n in policy.systems if n in held]


def _bucket_activity(
    policy: Policy, bucket: Bucket, findings: Sequence[StoredFinding]
) -> ProcessingActivity:
    tables = sorted(descendants(policy, bucket.tables), key=lambda t: (policy.tables[t].system, t))
    reached = [n for n in policy.bucket_systems(bucket) if n != APP_SYSTEM]
    recipients = [*bucket.recipients, *(_system_label(policy, n) for n in reached)]
    return ProcessingActivity(
        name=bucket.name,
        description=_one_line(bucket.description),
        purpose=bucket.purpose,
        data_subjects=bucket.data_subjects
        or (f"the people in {policy.subject_types[bucket.subject].table}",),
        personal_data=_categories(policy, tables, findings),
        recipients=tuple(dict.fromkeys(recipients)),
        transfers=bucket.transfers,
        erasure_time_limits=(
            bucket_rules_text(bucket),
            *_retention_text(policy, tables),
            ERASURE_REQUESTS,
        ),
        legal_bases=(),
        tables=tuple(f"{policy.tables[t].system}.{t}" for t in tables),
    )


def _root(policy: Policy, name: str) -> str:
    mapped = policy.tables[name]
    while mapped.via is not None:
        mapped = policy.tables[mapped.via.table]
    return mapped.name


def _table_groups(policy: Policy) -> dict[str, list[str]]:
    """Mapped tables no bucket erases, grouped by the table that holds the subject key."""
    in_buckets = descendants(policy, (t for b in policy.buckets.values() for t in b.tables))
    groups: dict[str, list[str]] = {}
    for name in policy.tables:
        if name not in in_buckets:
            groups.setdefault(_root(policy, name), []).append(name)
    return groups


def _group_activity(
    policy: Policy, root: str, tables: list[str], findings: Sequence[StoredFinding]
) -> ProcessingActivity:
    mapped = [policy.tables[t] for t in tables]
    retained = [t for t in mapped if t.on_erasure == ErasureAction.RETAIN]
    bases = tuple(dict.fromkeys(_one_line(t.legal_basis) for t in retained if t.legal_basis))
    limits = [*_kept(mapped), *_retention_text(policy, tables)]
    if len(retained) < len(mapped):
        limits.append(ERASURE_REQUESTS)
    what = "kept under a legal obligation" if retained else "erased on request only"
    return ProcessingActivity(
        name=f"tables: {', '.join(tables)}",
        description=f"Mapped tables no bucket erases ({what})",
        purpose="; ".join(f"compliance with a legal obligation: {b}" for b in bases) or None,
        data_subjects=(f"the people in {policy.subject_types[policy.tables[root].subject].table}",),
        personal_data=_categories(policy, tables, findings),
        recipients=tuple(_systems_of(policy, tables)),
        transfers=(),
        erasure_time_limits=tuple(limits),
        legal_bases=bases,
        tables=tuple(f"{policy.tables[t].system}.{t}" for t in tables),
    )


def record_of_processing(
    policy: Policy, findings: Sequence[StoredFinding], *, now: datetime | None = None
) -> RecordOfProcessing:
    """The Art. 30(1) record: one activity per bucket, then per group of unbucketed tables."""
    activities = [_bucket_activity(policy, b, findings) for b in policy.buckets.values()]
    activities += [
        _group_activity(policy, root, tables, findings)
        for root, tables in _table_groups(policy).items()
    ]
    if findings:
        newest = max(f.scanned_at for f in findings)
        source = f"the last scan (scan-personal-data, {newest:%Y-%m-%d %H:%M} UTC) and the policy"
    else:
        source = (
            "the columns the policy names only: no scan is stored yet "
            "(run scan-personal-data --execute)"
        )
    records = policy.records
    return RecordOfProcessing(
        controller=records.controller,
        dpo_contact=records.dpo_contact,
        security_measures=records.security_measures,
        generated_at=now or utcnow(),
        categories_source=source,
        activities=tuple(activities),
    )


# ---------------------------------------------------------------- rendering

_NOT_SET = "not set"
_FIELDS = (
    ("purpose", "Purpose (Art. 30(1)(b))", "purpose"),
    ("data_subjects", "Categories of data subjects (c)", "data_subjects"),
    ("personal_data", "Categories of personal data (c)", None),
    ("recipients", "Recipients (d)", "recipients"),
    ("transfers", "Transfers to third countries (e)", "transfers"),
    ("erasure_time_limits", "Time limits for erasure (f)", None),
    ("legal_bases", "Legal basis for keeping", None),
    ("tables", "Tables", None),
)


def _values(activity: ProcessingActivity, name: str) -> list[str]:
    value = getattr(activity, name)
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _markdown(record: RecordOfProcessing) -> str:
    def setting(value: str | None, key: str) -> str:
        return _one_line(value) if value else f"{_NOT_SET} ([records] {key})"

    measures = "; ".join(record.security_measures) or f"{_NOT_SET} ([records] security_measures)"
    lines = [
        "# Record of processing activities (GDPR Art. 30(1))",
        "",
        f"Generated by Privacy Desk on {record.generated_at:%Y-%m-%d %H:%M} UTC; categories "
        f"of personal data from {record.categories_source}.",
        "",
        f"- Controller (a): {setting(record.controller, 'controller')}",
        f"- Data protection officer (a): {setting(record.dpo_contact, 'dpo_contact')}",
        f"- Technical and organisational security measures (g): {measures}",
    ]
    for activity in record.activities:
        lines += ["", f"## {activity.name}", "", _one_line(activity.description) or "", ""]
        for name, title, key in _FIELDS:
            values = _values(activity, name)
            if not values:
                shown = f"{_NOT_SET} ([buckets.{activity.name}] {key})" if key else "none"
                if key and activity.name.startswith("tables: "):
                    shown = "none" if key == "transfers" else _NOT_SET
                lines.append(f"- {title}: {shown}")
            elif len(values) == 1:
                lines.append(f"- {title}: {_one_line(values[0])}")
            else:
                lines.append(f"- {title}:")
                lines += [f"  - {_one_line(v)}" for v in values]
    return "\n".join(lines) + "\n"


def _csv(record: RecordOfProcessing) -> str:
    header = ["activity", "description", *(name for name, _, _ in _FIELDS),
              "controller", "dpo_contact", "security_measures"]  # fmt: skip
    rows = [
        [
            a.name,
            a.description,
            *("; ".join(_values(a, name)) for name, _, _ in _FIELDS),
            record.controller,
            record.dpo_contact,
            "; ".join(record.security_measures),
        ]
        for a in record.activities
    ]
    return rows_to_csv(header, rows).decode("utf-8")


def render_record(record: RecordOfProcessing, fmt: str) -> str:
    """The record as Markdown, CSV (one row per activity, formulas neutralised) or JSON."""
    if fmt == "md":
        return _markdown(record)
    if fmt == "csv":
        return _csv(record)
    if fmt == "json":
        data = asdict(record)
        data["generated_at"] = record.generated_at.isoformat()
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    raise InvalidInput(
        f"{{field}} must be one of {', '.join(FORMATS)}, got {fmt!r}", field="format"
    )
