"""The policy file (``compliance.toml``): every retention period and deletion rule in one place.

Loading is two steps. ``load_policy`` parses and checks what can be checked from the
file alone; ``check_against_database`` reflects the application database and checks that
every table and column the policy names exists there. Both raise ``ConfigError`` naming
the offending key, so a typo is caught before any job touches data.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Date, DateTime, Engine, MetaData, Table

from compliance.errors import ConfigError, InvalidInput, NotFound, printable, quoted
from compliance.free_text import not_utf8
from compliance.policy.column_fit import check_fit
from compliance.policy.exports import ExportSettings, parse_exports
from compliance.policy.fields import Field, expect, key_name, read_section, unknown_keys
from compliance.policy.jurisdictions import (
    DEFAULT_JURISDICTION,
    GDPR,
    Jurisdiction,
    parse_jurisdictions,
)
from compliance.policy.strategies import (
    ERASURE_ACTIONS,
    MAX_ENV_BYTES,
    STRATEGIES,
    ErasureAction,
    strategy_options,
)
from compliance.policy.systems import (
    APP_SYSTEM,
    System,
    SystemKind,
    check_webhook_transport,
    parse_system,
    parse_system_list,
)
from compliance.roles import ROLES
from compliance.store.schema import reflect_tables

DEFAULT_CONFIG = "compliance.toml"
DSAR_ERASURE_BUCKET = "dsar_erasure"
#: Days a subject whose record was rejected is not proposed again in that bucket.
DEFAULT_REJECTION_COOLOFF_DAYS = 90
#: Days of the month a bucket's unreviewed batches are announced on, unless it says.
DEFAULT_ALERT_DAYS_OF_MONTH = (1,)
#: Days delivered DSAR export files are kept ([retention.dsar_exports] days).
DEFAULT_DSAR_EXPORT_DAYS = 30
#: Days job_runs rows are kept ([retention.job_runs] days).
DEFAULT_JOB_RUNS_DAYS = 180
DEFAULT_DATABASE_URL = "sqlite:///var/compliance.db"
DEFAULT_APP_DATABASE_URL = "sqlite:///var/demo_app.db"
DEFAULT_EXPORT_DIR = "var/exports"


@dataclass(frozen=True)
class Via:
    """``column`` points at ``parent_column`` of the parent ``table`` (by default its key)."""

    table: str
    column: str
    parent_column: str | None = None


@dataclass(frozen=True)
class MappedTable:
    """One entry of the data map: a table holding personal data and what erasure does to it."""

    name: str
    on_erasure: ErasureAction
    subject_column: str | None = None
    via: Via | None = None
    anonymize: Mapping[str, str] = field(default_factory=dict)
    #: Per anonymized column, the options its strategy was given (``redact``'s ``text``).
    anonymize_options: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    export_exclude: tuple[str, ...] = ()
    legal_basis: str | None = None
    #: The SQL system (database) holding the table; the application database by default.
    system: str = APP_SYSTEM
    #: Data the subject provided: what a portability request exports (GDPR Art. 20).
    portable: bool = False


@dataclass(frozen=True)
class AgeRule:
    """Subjects whose newest ``timestamp`` in ``table`` is older than ``older_than_days``."""

    table: str
    timestamp: str
    older_than_days: int


@dataclass(frozen=True)
class SqlRule:
    """A read-only SELECT returning subject keys."""

    sql: str
    #: What the query means, in words an officer reviewing a batch understands.
    description: str | None = None


Rule = AgeRule | SqlRule


@dataclass(frozen=True)
class Bucket:
    name: str
    description: str
    tables: tuple[str, ...]
    rules: tuple[Rule, ...]
    ops_channel: str | None = None
    ops_alert_days_of_month: tuple[int, ...] = ()
    ops_handle: str | None = None
    #: Days between finding a subject due and the earliest moment its data may be erased.
    grace_days: int = 0
    #: Days applied or rejected bookkeeping is kept before purge-compliance-data removes it.
    purge_after_days: int = 0
    #: Days a rejected (or excluded) subject is not proposed again in this bucket.
    rejection_cooloff_days: int = DEFAULT_REJECTION_COOLOFF_DAYS
    #: Webhook and manual systems an accepted deletion also reaches (SQL ones follow tables).
    systems: tuple[str, ...] = ()
    #: Columns of the [subjects] table shown beside each record under review, read from the
    #: application database when the page opens and never copied into the compliance database.
    review_columns: tuple[str, ...] = ()
    #: Art. 30(1)(b)-(e): why the data is processed, whose it is, who receives it, and
    #: transfers outside the EU. Optional; records-of-processing shows what is missing.
    purpose: str | None = None
    data_subjects: tuple[str, ...] = ()
    recipients: tuple[str, ...] = ()
    transfers: tuple[str, ...] = ()


@dataclass(frozen=True)
class RetentionEntry:
    name: str
    table: str
    timestamp: str
    days: int


@dataclass(frozen=True)
class Subjects:
    table: str = "users"
    key: str = "id"
    email: str | None = "email"
    #: The subjects table's column whose value picks a jurisdiction by its ``countries``.
    jurisdiction_column: str | None = None


@dataclass(frozen=True)
class SlackSettings:
    production: bool = False
    test_channel: str | None = None
    dashboard_url: str = "http://localhost:8501"
    dsar_channel: str | None = None


@dataclass(frozen=True)
class DashboardSettings:
    demo_mode: bool = False
    #: The header an authenticating proxy names the signed-in person in.
    identity_header: str = "X-Forwarded-Email"
    #: The header the proxy proves itself with: the identity header counts only beside it.
    proxy_secret_header: str = "X-Privacy-Desk-Proxy-Secret"
    #: The environment variable holding that shared secret; unset means header sign-in is off.
    proxy_secret_env: str = "COMPLIANCE_PROXY_SECRET"


DEFAULT_IDENTITY_METHODS = (
    "signed_in_account",
    "email_confirmation",
    "id_document",
    "security_questions",
    "other",
)


@dataclass(frozen=True)
class ReviewSettings:
    #: Nobody approves a DSAR request they logged themselves (default: on outside demo mode).
    four_eyes: bool = True


@dataclass(frozen=True)
class DsarSettings:
    erasure_review: bool = True
    #: Webhook and manual systems erasure and access requests reach (default: all declared).
    systems: tuple[str, ...] | None = None
    # Support's "Export now" waits for an officer's approval unless this is false.
    access_review: bool = True
    # How a requester's identity may be checked; a request names one of these plus a note.
    identity_methods: tuple[str, ...] = DEFAULT_IDENTITY_METHODS
    # Notice templates a deployment overrides file by file; None: only the shipped ones.
    templates_dir: Path | None = None
    # Processing attempts (with exponential backoff) before a request shows as failed.
    max_attempts: int = 3
    # process-dsar-requests emails the link and code once an access export is built.
    auto_deliver: bool = True
    # The law a request falls under when intake names none and its subject's country does not.
    default_jurisdiction: str = DEFAULT_JURISDICTION


@dataclass(frozen=True)
class AuditSettings:
    #: Append-only file the chain's head is anchored to (anchor-audit-log); None: not anchored.
    anchor_file: Path | None = None
    #: Slack channel anchors are posted to (default: [slack] dsar_channel).
    ops_channel: str | None = None


@dataclass(frozen=True)
class ScanSettings:
    """``[scan]``: what scan-personal-data may leave uncovered, and whom it tells."""

    #: ``"system.table.column"`` -> why an officer accepted it as not personal, or as
    #: personal data the policy rightly leaves alone; still listed as accepted.
    accept: Mapping[str, str] = field(default_factory=dict)
    #: Slack channel told about new uncovered personal data (default: [slack] dsar_channel).
    ops_channel: str | None = None


@dataclass(frozen=True)
class RecordsSettings:
    """``[records]``: the Art. 30(1)(a) and (g) parts of the record of processing."""

    controller: str | None = None
    dpo_contact: str | None = None
    security_measures: tuple[str, ...] = ()


@dataclass(frozen=True)
class SmtpSettings:
    host: str = "localhost"
    port: int = 25
    sender: str = "privacy@example.com"
    username: str | None = None
    starttls: bool = False
    #: A folder to write each message into as an .eml file instead of sending it (the demo's
    #: outbox: no mail server needed, and the Outbox page lists what was "sent").
    outbox: Path | None = None
    #: Whether the policy file has an [smtp] section: without one nothing is mailed by a job.
    configured: bool = False


@dataclass(frozen=True)
class Policy:
    path: Path | None
    database_url: str
    app_database_url: str
    export_dir: Path
    subjects: Subjects
    tables: Mapping[str, MappedTable]
    buckets: Mapping[str, Bucket]
    retention: Mapping[str, RetentionEntry]
    slack: SlackSettings = SlackSettings()
    roles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    dashboard: DashboardSettings = DashboardSettings()
    review: ReviewSettings = ReviewSettings()
    dsar: DsarSettings = DsarSettings()
    smtp: SmtpSettings = SmtpSettings()
    dsar_export_days: int = DEFAULT_DSAR_EXPORT_DAYS
    #: Days job_runs rows are kept ([retention.job_runs] days); retention-cleanup purges older.
    job_runs_days: int = DEFAULT_JOB_RUNS_DAYS
    audit: AuditSettings = AuditSettings()
    #: Every system by name, the application database (``app_database``) included.
    systems: Mapping[str, System] = field(default_factory=dict)
    #: Where export files live ([exports] storage: the folder export_dir, or a bucket).
    exports: ExportSettings = field(default_factory=ExportSettings)
    scan: ScanSettings = ScanSettings()
    records: RecordsSettings = RecordsSettings()
    #: Every jurisdiction by name, the built-in ``gdpr`` included ([jurisdictions.NAME]).
    jurisdictions: Mapping[str, Jurisdiction] = field(
        default_factory=lambda: {DEFAULT_JURISDICTION: GDPR}
    )

    def jurisdiction(self, name: str) -> Jurisdiction:
        """The declared jurisdiction ``name``; InvalidInput naming the known ones otherwise."""
        try:
            return self.jurisdictions[name]
        except KeyError:
            known = ", ".join(sorted(self.jurisdictions))
            raise InvalidInput(
                f"{{field}} must be one of {known}, got {quoted(name)}", field="jurisdiction"
            ) from None

    def bucket(self, name: str) -> Bucket:
        if name == DSAR_ERASURE_BUCKET:
            return self.dsar_erasure_bucket
        try:
            return self.buckets[name]
        except KeyError:
            known = ", ".join(sorted([*self.buckets, DSAR_ERASURE_BUCKET]))
            raise NotFound(f"unknown bucket '{name}' (known: {known})") from None

    @property
    def dsar_erasure_bucket(self) -> Bucket:
        """Erasure requests erase every mapped table that is not kept under ``retain``."""
        return Bucket(
            name=DSAR_ERASURE_BUCKET,
            description="Erasure requests from data subjects (GDPR Art. 17)",
            tables=tuple(n for n, t in self.tables.items() if t.on_erasure != ErasureAction.RETAIN),
            rules=(),
            ops_channel=self.slack.dsar_channel,
            # A data subject who asks again is heard again: no cool-off for requests.
            rejection_cooloff_days=0,
            systems=self.dsar_systems,
        )

    @property
    def dsar_systems(self) -> tuple[str, ...]:
        """The webhook and manual systems requests reach: [dsar] systems, else all of them."""
        if self.dsar.systems is not None:
            return self.dsar.systems
        return tuple(n for n, s in self.systems.items() if not s.is_sql)

    def system(self, name: str) -> System:
        try:
            return self.systems[name]
        except KeyError:
            raise NotFound(f"unknown system '{name}' (known: {', '.join(self.systems)})") from None

    def system_of(self, table: str) -> str:
        return self.tables[table].system

    def bucket_systems(self, bucket: Bucket) -> tuple[str, ...]:
        """Every system an accepted deletion of ``bucket`` reaches: SQL ones first, in policy order.

        An SQL system counts when one of the bucket's tables, or a table reached through
        them by ``via``, lives there and is not retained.
        """
        names = set(bucket.tables)
        for name, table in self.tables.items():
            current = table
            while current.via is not None:
                if current.via.table in names:
                    names.add(name)
                    break
                current = self.tables[current.via.table]
        erased = {
            self.tables[n].system
            for n in names
            if self.tables[n].on_erasure != ErasureAction.RETAIN
        }
        sql = [n for n, s in self.systems.items() if s.is_sql and n in erased]
        return (*sql, *bucket.systems)

    def retained_only_systems(self) -> tuple[str, ...]:
        """SQL systems whose mapped tables are all retained: an erasure skips them, by law."""
        out = []
        for name, system in self.systems.items():
            held = [t for t in self.tables.values() if t.system == name]
            if system.is_sql and held and all(t.on_erasure == ErasureAction.RETAIN for t in held):
                out.append(name)
        return tuple(out)

    @property
    def retained_tables(self) -> frozenset[str]:
        return frozenset(n for n, t in self.tables.items() if t.on_erasure == ErasureAction.RETAIN)


# ---------------------------------------------------------------- parsing helpers


def _non_negative_int(value: Any, key: str) -> int:
    expect(value, int, key)
    if value < 0:
        raise ConfigError(f"{key}: must be 0 or more, got {value}")
    return value


#: A century: longer than any retention period, and far from datetime's year-9999 edge.
MAX_DAYS = 36_500


def _days(value: Any, key: str) -> int:
    """A count of days, bounded so date arithmetic can never leave the calendar."""
    days = _non_negative_int(value, key)
    if days > MAX_DAYS:
        raise ConfigError(f"{key}: at most {MAX_DAYS} days (a century), got {days}")
    return days


#: Bucket and retention names end up in lock files, URLs, Slack messages and command lines
#: (``--bucket NAME``), so a name starts with a letter or digit: ``--execute`` is an option.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def _check_name(name: str, section: str) -> None:
    if not NAME_PATTERN.fullmatch(name):
        raise ConfigError(
            f"{section}.{key_name(name)}: a name is 1 to 64 letters, digits, '_' or '-', "
            "starting with a letter or digit"
        )


_SQL_COMMENT = re.compile(r"--[^\n]*|/\*.*?\*/", re.S)
_SQL_STRING = re.compile(r"'(?:[^']|'')*'")
_SQL_WRITE = re.compile(
    r"\b(insert|update|delete|merge|drop|alter|create|truncate|grant|revoke|attach|detach|"
    r"pragma|vacuum|replace|copy|call|do|lock|set|reindex|comment)\b",
    re.I,
)


def check_select_only(sql: str, key: str) -> str:
    """A rule's SQL must be one read-only SELECT; checked before it ever reaches a database."""
    code = _SQL_STRING.sub("''", _SQL_COMMENT.sub(" ", sql)).strip()
    code = code.rstrip(";").strip()
    if not code:
        raise ConfigError(f"{key}: the sql rule is empty")
    if ";" in code:
        raise ConfigError(f"{key}: the sql rule must be a single SELECT statement, found several")
    if not re.match(r"(?is)^(select|with)\b", code):
        raise ConfigError(f"{key}: the sql rule must be a SELECT statement")
    bad = _SQL_WRITE.search(code)
    if bad:
        raise ConfigError(
            f"{key}: the sql rule must only read, but it contains '{bad.group(0).upper()}'"
        )
    return sql.strip().rstrip(";").strip()


def _resolve_url(url: str, base: Path | None) -> str:
    """Relative SQLite paths are taken from the policy file's folder, not the shell's."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and base is not None:
        rest = url[len(prefix) :]
        if rest and not rest.startswith("/") and not rest.startswith(":memory:"):
            return prefix + str((base / rest).resolve())
    return url


def _under(path: Path, base: Path | None) -> Path:
    """Relative file paths are taken from the policy file's folder, not the shell's."""
    return base / path if not path.is_absolute() and base is not None else path


@dataclass(frozen=True)
class _Context:
    """What a section's checks may need: the policy file's folder and what is declared."""

    base: Path | None
    tables: Mapping[str, MappedTable] = field(default_factory=dict)
    systems: Mapping[str, System] = field(default_factory=dict)


# ---------------------------------------------------------------- field checks
# Each takes the typed value, its full key and the _Context; it returns the value kept.


def _days_check(value: Any, key: str, _context: Any) -> int:
    return _days(value, key)


def _non_negative(value: Any, key: str, _context: Any) -> int:
    return _non_negative_int(value, key)


def _at_least_one(value: Any, key: str, _context: Any) -> int:
    if _non_negative_int(value, key) < 1:
        raise ConfigError(f"{key}: expected at least 1, got 0")
    return value


def _tuple(value: Any, _key: str, _context: Any) -> tuple[Any, ...]:
    return tuple(value)


def _distinct(value: Any, _key: str, _context: Any) -> tuple[Any, ...]:
    return tuple(dict.fromkeys(value))


def _erasure_action(value: str, key: str, _context: Any) -> ErasureAction:
    if value not in ERASURE_ACTIONS:
        raise ConfigError(f"{key}: unknown action '{value}' (known: {', '.join(ERASURE_ACTIONS)})")
    return ErasureAction(value)


def _strategies(
    value: Mapping[str, Any], key: str, _context: Any
) -> dict[str, tuple[str, dict[str, str]]]:
    """Column -> (strategy, options): ``"null"`` or ``{ strategy = "redact", text = "-" }``."""
    out = {}
    for column, spec in value.items():
        column_key = f"{key}.{key_name(column)}"
        expect(spec, (str, dict), column_key)
        raw = spec if isinstance(spec, dict) else {"strategy": spec}
        strategy = expect(raw.get("strategy"), str, f"{column_key}.strategy")
        if strategy not in STRATEGIES:
            raise ConfigError(
                f"{column_key}: unknown strategy '{strategy}' "
                f"(known: {', '.join(sorted(STRATEGIES))})"
            )
        out[column] = (strategy, strategy_options(strategy, raw, column_key))
    return out


_NOT_A_STRING = "missing or not a string"
_VIA_FIELDS = (
    Field("table", missing=_NOT_A_STRING, wrong=_NOT_A_STRING),
    Field("column", missing=_NOT_A_STRING, wrong=_NOT_A_STRING),
    Field("parent_column"),
)


def _via(value: Any, key: str, _context: Any) -> Via:
    return Via(**read_section(value, _VIA_FIELDS, key))


_NO_TABLES = "list the tables an accepted deletion erases"


def _bucket_tables(value: list[Any], key: str, context: _Context) -> tuple[str, ...]:
    if not value:
        raise ConfigError(f"{key}: {_NO_TABLES}")
    for i, table in enumerate(value):
        expect(table, str, f"{key}[{i}]")
        if table not in context.tables:
            raise ConfigError(f"{key}[{i}]: '{table}' is not in the data map ([tables])")
        if context.tables[table].on_erasure == ErasureAction.RETAIN:
            raise ConfigError(f"{key}[{i}]: '{table}' is a retain table and can never be erased")
    return tuple(value)


_NO_RULES = "a bucket needs at least one rule"


def _rules(value: list[Any], key: str, context: _Context) -> tuple[Rule, ...]:
    if not value:
        raise ConfigError(f"{key}: {_NO_RULES}")
    rules = tuple(_parse_rule(r, f"{key}[{i}]") for i, r in enumerate(value))
    for i, rule in enumerate(rules):
        if not isinstance(rule, AgeRule):
            continue
        if rule.table not in context.tables:
            raise ConfigError(
                f"{key}[{i}].table: '{rule.table}' is not in the data map, so its rows "
                "cannot be linked to a subject"
            )
        if context.tables[rule.table].system != APP_SYSTEM:
            raise ConfigError(
                f"{key}[{i}].table: '{rule.table}' lives in system "
                f"'{context.tables[rule.table].system}'; rules run in the application database"
            )
    return rules


def _system_list(value: Any, key: str, context: _Context) -> tuple[str, ...]:
    return parse_system_list(value, key, context.systems)


def _days_of_month(value: Any, key: str, _context: Any) -> tuple[int, ...]:
    for i, day in enumerate(value):
        if not 1 <= day <= 31:
            raise ConfigError(f"{key}[{i}]: {day} is not a day of a month")
    return tuple(value)


def _retention_table(table: str, key: str, context: _Context) -> str:
    if table in context.tables and context.tables[table].system != APP_SYSTEM:
        raise ConfigError(
            f"{key}: '{table}' lives in system '{context.tables[table].system}'; retention "
            "cleanup runs in the application database"
        )
    if table in context.tables and context.tables[table].on_erasure == ErasureAction.RETAIN:
        raise ConfigError(f"{key}: '{table}' is a retain table and can never be cleaned up")
    return table


_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")  # an RFC 9110 token
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _header_name(value: str, key: str, _context: Any) -> str:
    if not _HEADER_NAME.fullmatch(value):
        raise ConfigError(f"{key}: {value!r} is not an HTTP header name")
    return value


def _env_name(value: str, key: str, _context: Any) -> str:
    if not _ENV_NAME.fullmatch(value):
        raise ConfigError(f"{key}: {value!r} is not an environment variable name")
    return value


def _identity_methods(value: Any, key: str, _context: Any) -> tuple[str, ...]:
    methods = tuple(m.strip() for m in value)
    if not methods or any(not m for m in methods) or len(set(methods)) != len(methods):
        raise ConfigError(f"{key}: give at least one method, each once, non-empty")
    return methods


def _templates_dir(value: str, key: str, context: _Context) -> Path | None:
    """A folder of notice templates that exists: a missing one was silently ignored."""
    if not value:
        return None
    folder = _file_path(value, key, context)
    if not folder.is_dir():
        raise ConfigError(f"{key}: '{printable(str(folder))}' is not a folder")
    return folder


#: Processing tries 5, then 10 minutes apart: 100 is days of retrying; 2**63 was accepted.
MAX_PROCESSING_TRIES = 100


def _processing_tries(value: Any, key: str, context: Any) -> int:
    if _at_least_one(value, key, context) > MAX_PROCESSING_TRIES:
        raise ConfigError(f"{key}: at most {MAX_PROCESSING_TRIES}, got {value}")
    return value


def _file_path(value: str, key: str, context: _Context) -> Path:
    if not value.strip() or "\x00" in value:
        raise ConfigError(f"{key}: give a file path")
    return _under(Path(value), context.base)


def _text(value: str, key: str, _context: Any) -> str:
    if not value.strip():
        raise ConfigError(f"{key}: expected some text, got {value!r}")
    return value.strip()


def _texts(value: list[str], key: str, context: Any) -> tuple[str, ...]:
    """A list of short texts (recipients, measures…), each non-empty, each once."""
    return tuple(dict.fromkeys(_text(item, f"{key}[{i}]", context) for i, item in enumerate(value)))


_ACCEPT_ENTRY = (
    Field("column", missing='missing ("system.table.column")', wrong=_NOT_A_STRING),
    Field("reason", missing="missing (why the column may stay as it is)", wrong=_NOT_A_STRING,
          check=_text),
)  # fmt: skip


def _scan_accept(value: list[Any], key: str, context: _Context) -> dict[str, str]:
    """``[{ column = "system.table.column", reason = "…" }]`` as column -> reason."""
    accepted: dict[str, str] = {}
    for i, raw in enumerate(value):
        entry = read_section(raw, _ACCEPT_ENTRY, f"{key}[{i}]", context)
        column = entry["column"].strip()
        system, _, rest = column.partition(".")
        table, _, name = rest.rpartition(".")
        if not (system and table and name):
            raise ConfigError(
                f"{key}[{i}].column: {column!r} is not system.table.column "
                f"(the application database is system '{APP_SYSTEM}')"
            )
        if system not in context.systems or not context.systems[system].is_sql:
            known = ", ".join(n for n, s in context.systems.items() if s.is_sql)
            raise ConfigError(
                f"{key}[{i}].column: '{system}' is not a declared sql system (known: {known})"
            )
        if column in accepted:
            raise ConfigError(f"{key}[{i}].column: '{column}' is accepted twice")
        accepted[column] = entry["reason"]
    return accepted


# ---------------------------------------------------------------- section tables
# One line a key: (key, type, default or missing, check); with neither, the key is optional.

_TABLE_FIELDS = (
    Field("on_erasure", missing=f"missing (one of {', '.join(ERASURE_ACTIONS)})",
          check=_erasure_action),
    Field("subject_column"),
    Field("via", dict, check=_via),
    Field("anonymize", dict, default={}, check=_strategies),
    Field("export_exclude", list, default=(), items=str, check=_tuple),
    Field("legal_basis"),
    Field("system", default=APP_SYSTEM),
    Field("portable", bool, default=False),
)  # fmt: skip
_BUCKET_FIELDS = (
    Field("tables", list, missing=_NO_TABLES, wrong=_NO_TABLES, check=_bucket_tables),
    Field("rules", list, missing=_NO_RULES, wrong=_NO_RULES, check=_rules),
    Field("systems", object, default=[], check=_system_list),
    Field("ops_alert_days_of_month", list, default=DEFAULT_ALERT_DAYS_OF_MONTH, items=int,
          check=_days_of_month),
    Field("description", default=""),
    Field("ops_channel"),
    Field("ops_handle"),
    Field("review_columns", list, default=(), items=str, check=_distinct),
    Field("grace_days", int, default=Bucket.grace_days, check=_days_check),
    Field("purge_after_days", int, default=Bucket.purge_after_days, check=_days_check),
    Field("rejection_cooloff_days", int, default=DEFAULT_REJECTION_COOLOFF_DAYS,
          check=_days_check),
    # Art. 30(1) record of processing (records-of-processing): optional, shown as missing.
    Field("purpose", check=_text),
    Field("data_subjects", list, default=(), items=str, check=_texts),
    Field("recipients", list, default=(), items=str, check=_texts),
    Field("transfers", list, default=(), items=str, check=_texts),
)  # fmt: skip
_SQL_RULE_FIELDS = (
    Field("sql", missing="missing", check=lambda sql, key, _: check_select_only(sql, key)),
    Field("description"),
)
_AGE_RULE_FIELDS = (  # each one required: _parse_rule names every missing one at once
    Field("table", missing="missing"),
    Field("timestamp", missing="missing"),
    Field("older_than_days", int, missing="missing", check=_days_check),
)
_RETENTION_FIELDS = (
    Field("table", missing=_NOT_A_STRING, wrong=_NOT_A_STRING, check=_retention_table),
    Field("timestamp", missing=_NOT_A_STRING, wrong=_NOT_A_STRING),
    Field("days", int, missing="missing", check=_days_check),
)
#: [retention.dsar_exports]: not a table, the age after which delivered exports are deleted.
_DSAR_EXPORTS_FIELDS = (Field("days", int, default=DEFAULT_DSAR_EXPORT_DAYS, check=_days_check),)
#: [retention.job_runs]: this tool's own log of job runs, in the compliance database.
_JOB_RUNS_FIELDS = (Field("days", int, default=DEFAULT_JOB_RUNS_DAYS, check=_days_check),)
_SUBJECTS_FIELDS = (
    Field("table", default=Subjects.table),
    Field("key", default=Subjects.key),
    Field("email"),
    Field("jurisdiction_column"),
)
_SLACK_FIELDS = (
    Field("production", bool, default=SlackSettings.production),
    Field("test_channel"),
    Field("dashboard_url", default=SlackSettings.dashboard_url),
    Field("dsar_channel"),
)
_DASHBOARD_FIELDS = (
    Field("identity_header", default=DashboardSettings.identity_header, check=_header_name),
    Field("proxy_secret_header", default=DashboardSettings.proxy_secret_header,
          check=_header_name),
    Field("proxy_secret_env", default=DashboardSettings.proxy_secret_env, check=_env_name),
    Field("demo_mode", bool, default=DashboardSettings.demo_mode),
)  # fmt: skip
#: four_eyes has no fixed default: it is on unless the dashboard runs in demo mode.
_REVIEW_FIELDS = (Field("four_eyes", bool),)
_DSAR_FIELDS = (
    Field("identity_methods", list, default=DEFAULT_IDENTITY_METHODS, items=str,
          check=_identity_methods),
    Field("templates_dir", check=_templates_dir),
    Field("max_attempts", int, default=DsarSettings.max_attempts, check=_processing_tries),
    Field("erasure_review", bool, default=DsarSettings.erasure_review),
    Field("access_review", bool, default=DsarSettings.access_review),
    Field("auto_deliver", bool, default=DsarSettings.auto_deliver),
    Field("systems", object, check=_system_list),
    Field("default_jurisdiction", default=DsarSettings.default_jurisdiction),
)  # fmt: skip
_SMTP_FIELDS = (
    Field("host", default=SmtpSettings.host),
    Field("port", int, default=SmtpSettings.port, check=_non_negative),
    Field("sender", default=SmtpSettings.sender),
    Field("username"),
    Field("starttls", bool, default=SmtpSettings.starttls),
    Field("outbox", check=_file_path),
)
_AUDIT_FIELDS = (Field("anchor_file", check=_file_path), Field("ops_channel"))
_SCAN_FIELDS = (
    Field("accept", list, default=(), check=_scan_accept),
    Field("ops_channel", check=_text),
)
_RECORDS_FIELDS = (
    Field("controller", check=_text),
    Field("dpo_contact", check=_text),
    Field("security_measures", list, default=(), items=str, check=_texts),
)
_SECTIONS = frozenset(
    {"database", "app_database", "subjects", "tables", "buckets", "slack", "roles",
     "dashboard", "review", "dsar", "smtp", "retention", "exports", "audit", "systems",
     "scan", "records", "jurisdictions"}
)  # fmt: skip


# ---------------------------------------------------------------- sections


def _parse_table(name: str, raw: Any) -> MappedTable:
    key = f"tables.{key_name(name)}"
    values = read_section(raw, _TABLE_FIELDS, key)
    if (values["subject_column"] is None) == (values["via"] is None):
        raise ConfigError(f"{key}: give exactly one of subject_column or via")
    if values["on_erasure"] == "anonymize" and not values["anonymize"]:
        raise ConfigError(f"{key}.anonymize: on_erasure = 'anonymize' needs columns to anonymize")
    specs = values.pop("anonymize")
    return MappedTable(
        name=name,
        anonymize={column: strategy for column, (strategy, _) in specs.items()},
        anonymize_options={column: opts for column, (_, opts) in specs.items() if opts},
        **values,
    )


def _check_via_chains(tables: Mapping[str, MappedTable]) -> None:
    for name in tables:
        seen = [name]
        current = tables[name]
        while current.via is not None:
            parent = current.via.table
            key = f"tables.{current.name}.via.table"
            if parent in seen:
                loop = " -> ".join([*seen, parent])
                raise ConfigError(f"{key}: the via chain loops ({loop})")
            if parent not in tables:
                raise ConfigError(
                    f"{key}: '{parent}' is not in the data map, so the chain from "
                    f"'{name}' ends nowhere"
                )
            seen.append(parent)
            current = tables[parent]


def _check_table_systems(tables: Mapping[str, MappedTable], systems: Mapping[str, System]) -> None:
    """Each table names an SQL system, and a via chain never leaves its database."""
    for name, table in tables.items():
        key = f"tables.{key_name(name)}.system"
        if table.system not in systems:
            known = ", ".join(n for n, s in systems.items() if s.is_sql)
            raise ConfigError(f"{key}: '{table.system}' is not a declared system (known: {known})")
        if not systems[table.system].is_sql:
            raise ConfigError(
                f"{key}: '{table.system}' is a {systems[table.system].kind} system; tables live "
                "in sql systems"
            )
        if table.via is not None and tables[table.via.table].system != table.system:
            raise ConfigError(
                f"tables.{key_name(name)}.via.table: '{table.via.table}' lives in system "
                f"'{tables[table.via.table].system}', not '{table.system}'; a via chain "
                "stays in one database"
            )


def _check_subjects_table(tables: Mapping[str, MappedTable], subjects: Subjects) -> None:
    if subjects.table not in tables:
        raise ConfigError(f"subjects.table: '{subjects.table}' is not in the data map ([tables])")
    if tables[subjects.table].system != APP_SYSTEM:
        raise ConfigError(
            f"tables.{subjects.table}.system: the subjects table lives in the application database"
        )
    if tables[subjects.table].subject_column != subjects.key:
        raise ConfigError(
            f"tables.{subjects.table}.subject_column: must be the subject key '{subjects.key}'"
        )


def _parse_tables(
    raw: Mapping[str, Any], subjects: Subjects, systems: Mapping[str, System]
) -> dict[str, MappedTable]:
    tables = {name: _parse_table(name, t) for name, t in raw.items()}
    if not tables:
        raise ConfigError("tables: the data map is empty; map at least the subjects table")
    _check_via_chains(tables)
    _check_table_systems(tables, systems)
    _check_subjects_table(tables, subjects)
    return tables


def _parse_rule(raw: Any, key: str) -> Rule:
    expect(raw, dict, key)
    if "sql" in raw:
        return SqlRule(**read_section(raw, _SQL_RULE_FIELDS, key))
    missing = [f.name for f in _AGE_RULE_FIELDS if f.name not in raw]
    if missing:
        raise ConfigError(
            f"{key}: a rule needs either sql or table, timestamp and older_than_days "
            f"(missing {', '.join(missing)})"
        )
    return AgeRule(**read_section(raw, _AGE_RULE_FIELDS, key))


def _parse_bucket(name: str, raw: Any, context: _Context) -> Bucket:
    _check_name(name, "buckets")
    return Bucket(
        name=name, **read_section(raw, _BUCKET_FIELDS, f"buckets.{key_name(name)}", context)
    )


def _parse_buckets(raw: Mapping[str, Any], context: _Context) -> dict[str, Bucket]:
    buckets = {name: _parse_bucket(name, b, context) for name, b in raw.items()}
    if DSAR_ERASURE_BUCKET in buckets:
        raise ConfigError(
            f"buckets.{DSAR_ERASURE_BUCKET}: reserved for erasure requests; choose another name"
        )
    return buckets


def _parse_retention(name: str, raw: Any, context: _Context) -> RetentionEntry:
    _check_name(name, "retention")
    key = f"retention.{key_name(name)}"
    return RetentionEntry(name=name, **read_section(raw, _RETENTION_FIELDS, key, context))


def _parse_retention_section(
    raw: Mapping[str, Any], context: _Context
) -> tuple[dict[str, RetentionEntry], int, int]:
    """The [retention.NAME] table entries, then the days for DSAR exports and job runs."""
    special = {"dsar_exports": _DSAR_EXPORTS_FIELDS, "job_runs": _JOB_RUNS_FIELDS}
    days = {
        name: read_section(raw.get(name, {}), fields, f"retention.{name}")["days"]
        for name, fields in special.items()
    }
    entries = {
        name: _parse_retention(name, entry, context)
        for name, entry in raw.items()
        if name not in special
    }
    return entries, days["dsar_exports"], days["job_runs"]


def _parse_roles(raw: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    roles: dict[str, tuple[str, ...]] = {}
    for role, members in raw.items():
        if role not in ROLES:
            known = ", ".join(sorted(ROLES))
            raise ConfigError(f"roles.{key_name(role)}: unknown role (known: {known})")
        expect(members, list, f"roles.{role}")
        for i, member in enumerate(members):
            expect(member, str, f"roles.{role}[{i}]")
        roles[role] = tuple(m.strip().lower() for m in members)
    return roles


def _parse_dashboard(raw: Any) -> DashboardSettings:
    values = read_section(raw, _DASHBOARD_FIELDS, "dashboard")
    if values["identity_header"].lower() == values["proxy_secret_header"].lower():
        raise ConfigError(
            "dashboard.proxy_secret_header: must differ from dashboard.identity_header"
        )
    return DashboardSettings(**values)


def _section(data: Mapping[str, Any], name: str) -> dict[str, Any]:
    return expect(data.get(name, {}), dict, name)


def _from_env_or_file(
    env: Mapping[str, str], variable: str, data: Mapping[str, Any], key: str, default: str
) -> str:
    """An environment variable wins over the file's ``key`` (``section.name``).

    A variable holding bytes that are not UTF-8 arrives as lone surrogates, which no driver
    or path can encode: refused here, by its name.
    """
    section, name = key.split(".")
    given = env.get(variable)
    if given and not_utf8(given):
        raise ConfigError(f"{variable} is not valid UTF-8 text")
    return expect(given or _section(data, section).get(name, default), str, key)


def _parse_systems(
    raw: Mapping[str, Any], app_url: str, env: Mapping[str, str], base: Path | None
) -> dict[str, System]:
    systems: dict[str, System] = {
        APP_SYSTEM: System(
            APP_SYSTEM, SystemKind.SQL, url=app_url, description="The application database"
        )
    }
    for name, system in raw.items():
        systems[name] = parse_system(name, system, env, lambda u: _resolve_url(u, base))
    return systems


def parse_policy(
    data: Mapping[str, Any], path: Path | None = None, env: Mapping[str, str] | None = None
) -> Policy:
    env = os.environ if env is None else env
    base = path.parent if path is not None else None
    check_shape(data)
    check_environment(env, (n for n in env if n.startswith("COMPLIANCE_") or n in _SECRETS))
    unknown_keys(data, set(_SECTIONS), "policy")
    database_url = _from_env_or_file(
        env, "COMPLIANCE_DATABASE_URL", data, "database.url", DEFAULT_DATABASE_URL
    )
    app_url = _resolve_url(
        _from_env_or_file(
            env, "COMPLIANCE_APP_DATABASE_URL", data, "app_database.url", DEFAULT_APP_DATABASE_URL
        ),
        base,
    )
    export_dir = _under(
        Path(
            _from_env_or_file(env, "COMPLIANCE_EXPORT_DIR", data, "exports.dir", DEFAULT_EXPORT_DIR)
        ),
        base,
    )
    subjects = Subjects(**read_section(data.get("subjects", {}), _SUBJECTS_FIELDS, "subjects"))
    systems = _parse_systems(_section(data, "systems"), app_url, env, base)
    tables = _parse_tables(_section(data, "tables"), subjects, systems)
    context = _Context(base, tables, systems)
    buckets = _parse_buckets(_section(data, "buckets"), context)
    retention, dsar_export_days, job_runs_days = _parse_retention_section(
        _section(data, "retention"), context
    )
    settings = _parse_settings(data, context)
    raw_jurisdictions = _section(data, "jurisdictions")
    for name in raw_jurisdictions:
        _check_name(name, "jurisdictions")
    jurisdictions = parse_jurisdictions(raw_jurisdictions, settings["dsar"].default_jurisdiction)
    check_webhook_transport(systems, demo_mode=settings["dashboard"].demo_mode)
    named = [s.secret_env or s.url_env for s in systems.values()]
    check_environment(env, [settings["dashboard"].proxy_secret_env, *filter(None, named)])
    return Policy(
        path=path,
        database_url=_resolve_url(database_url, base),
        app_database_url=app_url,
        export_dir=export_dir,
        subjects=subjects,
        tables=tables,
        buckets=buckets,
        retention=retention,
        dsar_export_days=dsar_export_days,
        job_runs_days=job_runs_days,
        systems=systems,
        exports=parse_exports(data.get("exports", {})),
        jurisdictions=jurisdictions,
        **settings,
    )


def _parse_settings(data: Mapping[str, Any], context: _Context) -> dict[str, Any]:
    """The sections that only configure people and channels: slack, roles, dashboard…"""
    slack = SlackSettings(**read_section(data.get("slack", {}), _SLACK_FIELDS, "slack"))
    roles = _parse_roles(_section(data, "roles"))
    dashboard = _parse_dashboard(data.get("dashboard", {}))
    four_eyes = read_section(data.get("review", {}), _REVIEW_FIELDS, "review")["four_eyes"]
    review = ReviewSettings(not dashboard.demo_mode if four_eyes is None else four_eyes)
    dsar = DsarSettings(**read_section(data.get("dsar", {}), _DSAR_FIELDS, "dsar", context))
    smtp = SmtpSettings(
        **read_section(data.get("smtp", {}), _SMTP_FIELDS, "smtp", context),
        configured="smtp" in data,
    )
    audit = AuditSettings(**read_section(data.get("audit", {}), _AUDIT_FIELDS, "audit", context))
    scan = ScanSettings(**read_section(data.get("scan", {}), _SCAN_FIELDS, "scan", context))
    records = RecordsSettings(**read_section(data.get("records", {}), _RECORDS_FIELDS, "records"))
    return {"slack": slack, "roles": roles, "dashboard": dashboard, "review": review,
            "dsar": dsar, "smtp": smtp, "audit": audit, "scan": scan,
            "records": records}  # fmt: skip


def config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("COMPLIANCE_CONFIG") or DEFAULT_CONFIG)


#: Limits on what the policy file and the environment may hold: far beyond any real policy,
#: short of what exhausts memory (COMPLIANCE_CONFIG=/dev/zero) or Python's recursion.
MAX_POLICY_BYTES = 1024 * 1024
MAX_NESTING = 32
MIN_INT, MAX_INT = -(2**63), 2**63 - 1
#: Secrets and settings read from the environment besides COMPLIANCE_*.
_SECRETS = frozenset({"SMTP_PASSWORD", "SLACK_BOT_TOKEN", "SLACK_API_URL"})


def check_shape(data: Any) -> None:
    """ConfigError naming the key where tables or arrays nest deeper than ``MAX_NESTING``, or
    an integer falls outside 64 bits (no database column holds it)."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, where, depth = stack.pop()
        if isinstance(value, bool):
            continue
        if isinstance(value, int) and not MIN_INT <= value <= MAX_INT:
            shown = str(value) if len(str(value)) <= 30 else f"a {len(str(value))}-digit number"
            raise ConfigError(f"{where or 'policy'}: {shown} is outside 64-bit whole numbers")
        if isinstance(value, dict | list):
            if depth >= MAX_NESTING:
                raise ConfigError(
                    f"{where or 'policy'}: tables and arrays nest deeper than {MAX_NESTING} levels"
                )
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, child in items:
                if isinstance(value, list):
                    inner = f"{where}[{key}]"
                else:
                    inner = f"{where}.{key_name(key)}" if where else key_name(key)
                stack.append((child, inner, depth + 1))


def check_environment(env: Mapping[str, str], names: Any) -> None:
    """ConfigError naming a variable longer than 64 KiB: no URL, path or secret is."""
    for name in names:
        value = env.get(name) or ""
        if len(value) > MAX_ENV_BYTES:
            raise ConfigError(
                f"{name} is longer than {MAX_ENV_BYTES // 1024} KiB ({len(value)} characters)"
            )


def _read_policy_bytes(path: Path) -> bytes:
    """At most ``MAX_POLICY_BYTES`` + 1 bytes: a device or a huge file is refused, not read."""
    with path.open("rb") as handle:
        raw = handle.read(MAX_POLICY_BYTES + 1)
    if len(raw) > MAX_POLICY_BYTES:
        raise ConfigError(f"policy file {path} is larger than {MAX_POLICY_BYTES // 1024} KiB")
    return raw


def load_policy(path: Path | str | None = None, env: Mapping[str, str] | None = None) -> Policy:
    path = Path(path) if path is not None else config_path(env)
    try:
        raw = _read_policy_bytes(path)
    except FileNotFoundError:
        raise ConfigError(
            f"policy file {path} not found (set COMPLIANCE_CONFIG or run "
            "'python -m jobs init-db --demo' to create the demo one)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"policy file {path} cannot be read: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"policy file {path} is not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(
            f"policy file {path}: tables and arrays nest deeper than {MAX_NESTING} levels"
        ) from None
    except ValueError:  # tomllib's int() of a number with thousands of digits
        raise ConfigError(f"policy file {path}: a number is outside 64-bit whole numbers") from None
    return parse_policy(data, path.resolve(), env)


# ---------------------------------------------------------------- against the database


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


def _check_mapped_table(db: _Reflected, name: str, table: MappedTable) -> None:
    key = f"tables.{name}"
    if table.subject_column:
        db.need_column(name, table.subject_column, f"{key}.subject_column")
    if table.via:
        db.need_column(name, table.via.column, f"{key}.via.column")
        if table.via.parent_column:
            db.need_column(table.via.table, table.via.parent_column, f"{key}.via.parent_column")
        elif len(db.primary_key(table.via.table)) != 1:
            raise ConfigError(
                f"{key}.via.parent_column: '{table.via.table}' has no single-column "
                "primary key, so name the column the via points at"
            )
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
    subjects = policy.subjects
    db.need_column(subjects.table, subjects.key, "subjects.key")
    if subjects.email:
        db.need_column(subjects.table, subjects.email, "subjects.email")
    if subjects.jurisdiction_column:
        db.need_column(subjects.table, subjects.jurisdiction_column, "subjects.jurisdiction_column")
    for name, table in checked.items():
        _check_mapped_table(db, name, table)


def _check_buckets(db: _Reflected, policy: Policy) -> None:
    subjects = policy.subjects
    hidden = policy.tables[subjects.table].export_exclude if subjects.table in policy.tables else ()
    for bname, bucket in policy.buckets.items():
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
