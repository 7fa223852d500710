"""The policy file (``compliance.toml``): every retention period and deletion rule in one place.

Loading is two steps. ``load_policy`` parses and checks what can be checked from the
file alone; ``check_against_database`` reflects the application database and checks that
every table and column the policy names exists there. Both raise ``ConfigError`` naming
the offending key, so a typo is caught before any job touches data.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Date, DateTime, Engine, inspect

from compliance.errors import ConfigError, NotFound
from compliance.policy.strategies import ERASURE_ACTIONS, STRATEGIES
from compliance.policy.systems import APP_SYSTEM, System, parse_system, parse_system_list

DEFAULT_CONFIG = "compliance.toml"
DSAR_ERASURE_BUCKET = "dsar_erasure"
#: Days a subject whose record was rejected is not proposed again in that bucket.
DEFAULT_REJECTION_COOLOFF_DAYS = 90


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
    on_erasure: str
    subject_column: str | None = None
    via: Via | None = None
    anonymize: Mapping[str, str] = field(default_factory=dict)
    export_exclude: tuple[str, ...] = ()
    legal_basis: str | None = None
    #: The SQL system (database) holding the table; the application database by default.
    system: str = APP_SYSTEM


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


@dataclass(frozen=True)
class AuditSettings:
    #: Append-only file the chain's head is anchored to (anchor-audit-log); None: not anchored.
    anchor_file: Path | None = None
    #: Slack channel anchors are posted to (default: [slack] dsar_channel).
    ops_channel: str | None = None


@dataclass(frozen=True)
class SmtpSettings:
    host: str = "localhost"
    port: int = 25
    sender: str = "privacy@example.com"
    username: str | None = None
    starttls: bool = False


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
    dsar_export_days: int = 30
    #: Days job_runs rows are kept ([retention.job_runs] days); retention-cleanup purges older.
    job_runs_days: int = 180
    audit: AuditSettings = AuditSettings()
    #: Every system by name, the application database (``app_database``) included.
    systems: Mapping[str, System] = field(default_factory=dict)

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
            tables=tuple(n for n, t in self.tables.items() if t.on_erasure != "retain"),
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
        erased = {self.tables[n].system for n in names if self.tables[n].on_erasure != "retain"}
        sql = [n for n, s in self.systems.items() if s.is_sql and n in erased]
        return (*sql, *bucket.systems)

    def retained_only_systems(self) -> tuple[str, ...]:
        """SQL systems whose mapped tables are all retained: an erasure skips them, by law."""
        out = []
        for name, system in self.systems.items():
            held = [t for t in self.tables.values() if t.system == name]
            if system.is_sql and held and all(t.on_erasure == "retain" for t in held):
                out.append(name)
        return tuple(out)

    @property
    def retained_tables(self) -> frozenset[str]:
        return frozenset(n for n, t in self.tables.items() if t.on_erasure == "retain")


# ---------------------------------------------------------------- parsing helpers


def _expect(value: Any, kind: type | tuple[type, ...], key: str) -> Any:
    if isinstance(value, bool) and kind in (int, (int,)):
        raise ConfigError(f"{key}: expected a whole number, got {value!r}")
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ConfigError(f"{key}: expected {names}, got {value!r}")
    return value


def _non_negative_int(value: Any, key: str) -> int:
    _expect(value, int, key)
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


#: Bucket and retention names end up in lock files, URLs and Slack messages.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _check_name(name: str, section: str) -> None:
    if not NAME_PATTERN.fullmatch(name):
        raise ConfigError(f"{section}.{_k(name)}: a name is 1 to 64 letters, digits, '_' or '-'")


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _k(name: object) -> str:
    """A key as TOML would write it, so odd names (spaces, newlines) stay on one line."""
    text = str(name)
    return text if _BARE_KEY.fullmatch(text) else json.dumps(text, ensure_ascii=False)


def _optional_str(section: Mapping[str, Any], name: str, key: str) -> str | None:
    value = section.get(name)
    return None if value is None else _expect(value, str, f"{key}.{name}")


def _unknown_keys(section: Mapping[str, Any], allowed: set[str], key: str) -> None:
    extra = sorted(set(section) - allowed)
    if extra:
        raise ConfigError(
            f"{key}.{_k(extra[0])}: unknown key (allowed: {', '.join(sorted(allowed))})"
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


# ---------------------------------------------------------------- sections


def _parse_table(name: str, raw: Any) -> MappedTable:
    key = f"tables.{_k(name)}"
    _expect(raw, dict, key)
    _unknown_keys(
        raw,
        {
            "subject_column",
            "via",
            "on_erasure",
            "anonymize",
            "export_exclude",
            "legal_basis",
            "system",
        },
        key,
    )
    on_erasure = raw.get("on_erasure")
    if on_erasure is not None:
        _expect(on_erasure, str, f"{key}.on_erasure")
    if on_erasure is None:
        raise ConfigError(f"{key}.on_erasure: missing (one of {', '.join(ERASURE_ACTIONS)})")
    if on_erasure not in ERASURE_ACTIONS:
        raise ConfigError(
            f"{key}.on_erasure: unknown action '{on_erasure}' (known: {', '.join(ERASURE_ACTIONS)})"
        )
    subject_column = raw.get("subject_column")
    via_raw = raw.get("via")
    if (subject_column is None) == (via_raw is None):
        raise ConfigError(f"{key}: give exactly one of subject_column or via")
    if subject_column is not None:
        _expect(subject_column, str, f"{key}.subject_column")
    via = None
    if via_raw is not None:
        _expect(via_raw, dict, f"{key}.via")
        _unknown_keys(via_raw, {"table", "column", "parent_column"}, f"{key}.via")
        for part in ("table", "column"):
            if not isinstance(via_raw.get(part), str):
                raise ConfigError(f"{key}.via.{part}: missing or not a string")
        parent_column = via_raw.get("parent_column")
        if parent_column is not None:
            _expect(parent_column, str, f"{key}.via.parent_column")
        via = Via(via_raw["table"], via_raw["column"], parent_column)
    anonymize = raw.get("anonymize", {})
    _expect(anonymize, dict, f"{key}.anonymize")
    for column, strategy in anonymize.items():
        _expect(strategy, str, f"{key}.anonymize.{_k(column)}")
        if strategy not in STRATEGIES:
            raise ConfigError(
                f"{key}.anonymize.{_k(column)}: unknown strategy '{strategy}' "
                f"(known: {', '.join(sorted(STRATEGIES))})"
            )
    if on_erasure == "anonymize" and not anonymize:
        raise ConfigError(f"{key}.anonymize: on_erasure = 'anonymize' needs columns to anonymize")
    exclude = raw.get("export_exclude", [])
    _expect(exclude, list, f"{key}.export_exclude")
    for i, column in enumerate(exclude):
        _expect(column, str, f"{key}.export_exclude[{i}]")
    legal_basis = raw.get("legal_basis")
    if legal_basis is not None:
        _expect(legal_basis, str, f"{key}.legal_basis")
    system = _expect(raw.get("system", APP_SYSTEM), str, f"{key}.system")
    return MappedTable(
        name=name,
        on_erasure=on_erasure,
        subject_column=subject_column,
        via=via,
        anonymize=dict(anonymize),
        export_exclude=tuple(exclude),
        legal_basis=legal_basis,
        system=system,
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
        key = f"tables.{_k(name)}.system"
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
                f"tables.{_k(name)}.via.table: '{table.via.table}' lives in system "
                f"'{tables[table.via.table].system}', not '{table.system}'; a via chain "
                "stays in one database"
            )


def _parse_rule(raw: Any, key: str) -> Rule:
    _expect(raw, dict, key)
    if "sql" in raw:
        _unknown_keys(raw, {"sql", "description"}, key)
        _expect(raw["sql"], str, f"{key}.sql")
        return SqlRule(
            check_select_only(raw["sql"], f"{key}.sql"), _optional_str(raw, "description", key)
        )
    missing = [k for k in ("table", "timestamp", "older_than_days") if k not in raw]
    if missing:
        raise ConfigError(
            f"{key}: a rule needs either sql or table, timestamp and older_than_days "
            f"(missing {', '.join(missing)})"
        )
    _unknown_keys(raw, {"table", "timestamp", "older_than_days"}, key)
    _expect(raw["table"], str, f"{key}.table")
    _expect(raw["timestamp"], str, f"{key}.timestamp")
    return AgeRule(
        raw["table"],
        raw["timestamp"],
        _days(raw["older_than_days"], f"{key}.older_than_days"),
    )


def _parse_bucket(
    name: str, raw: Any, tables: Mapping[str, MappedTable], systems: Mapping[str, System]
) -> Bucket:
    _check_name(name, "buckets")
    key = f"buckets.{_k(name)}"
    _expect(raw, dict, key)
    _unknown_keys(
        raw,
        {
            "description",
            "tables",
            "rules",
            "ops_channel",
            "ops_alert_days_of_month",
            "ops_handle",
            "grace_days",
            "purge_after_days",
            "rejection_cooloff_days",
            "systems",
            "review_columns",
        },
        key,
    )
    bucket_tables = raw.get("tables")
    if not isinstance(bucket_tables, list) or not bucket_tables:
        raise ConfigError(f"{key}.tables: list the tables an accepted deletion erases")
    for i, table in enumerate(bucket_tables):
        _expect(table, str, f"{key}.tables[{i}]")
        if table not in tables:
            raise ConfigError(f"{key}.tables[{i}]: '{table}' is not in the data map ([tables])")
        if tables[table].on_erasure == "retain":
            raise ConfigError(
                f"{key}.tables[{i}]: '{table}' is a retain table and can never be erased"
            )
    rules_raw = raw.get("rules")
    if not isinstance(rules_raw, list) or not rules_raw:
        raise ConfigError(f"{key}.rules: a bucket needs at least one rule")
    rules = tuple(_parse_rule(r, f"{key}.rules[{i}]") for i, r in enumerate(rules_raw))
    for i, rule in enumerate(rules):
        if isinstance(rule, AgeRule) and rule.table not in tables:
            raise ConfigError(
                f"{key}.rules[{i}].table: '{rule.table}' is not in the data map, so its rows "
                "cannot be linked to a subject"
            )
        if isinstance(rule, AgeRule) and tables[rule.table].system != APP_SYSTEM:
            raise ConfigError(
                f"{key}.rules[{i}].table: '{rule.table}' lives in system "
                f"'{tables[rule.table].system}'; rules run in the application database"
            )
    bucket_systems = parse_system_list(raw.get("systems", []), f"{key}.systems", systems)
    days = raw.get("ops_alert_days_of_month", [1])
    _expect(days, list, f"{key}.ops_alert_days_of_month")
    for i, day in enumerate(days):
        _expect(day, int, f"{key}.ops_alert_days_of_month[{i}]")
        if not 1 <= day <= 31:
            raise ConfigError(f"{key}.ops_alert_days_of_month[{i}]: {day} is not a day of a month")
    for opt in ("description", "ops_channel", "ops_handle"):
        if opt in raw:
            _expect(raw[opt], str, f"{key}.{opt}")
    review_columns = raw.get("review_columns", [])
    _expect(review_columns, list, f"{key}.review_columns")
    for i, column in enumerate(review_columns):
        _expect(column, str, f"{key}.review_columns[{i}]")
    return Bucket(
        name=name,
        review_columns=tuple(dict.fromkeys(review_columns)),
        description=_optional_str(raw, "description", key) or "",
        tables=tuple(bucket_tables),
        rules=rules,
        ops_channel=_optional_str(raw, "ops_channel", key),
        ops_alert_days_of_month=tuple(days),
        ops_handle=_optional_str(raw, "ops_handle", key),
        grace_days=_days(raw.get("grace_days", 0), f"{key}.grace_days"),
        purge_after_days=_days(raw.get("purge_after_days", 0), f"{key}.purge_after_days"),
        rejection_cooloff_days=_days(
            raw.get("rejection_cooloff_days", DEFAULT_REJECTION_COOLOFF_DAYS),
            f"{key}.rejection_cooloff_days",
        ),
        systems=bucket_systems,
    )


def _parse_retention(name: str, raw: Any, tables: Mapping[str, MappedTable]) -> RetentionEntry:
    _check_name(name, "retention")
    key = f"retention.{_k(name)}"
    _expect(raw, dict, key)
    _unknown_keys(raw, {"table", "timestamp", "days"}, key)
    for part in ("table", "timestamp"):
        if not isinstance(raw.get(part), str):
            raise ConfigError(f"{key}.{part}: missing or not a string")
    table = raw["table"]
    if table in tables and tables[table].system != APP_SYSTEM:
        raise ConfigError(
            f"{key}.table: '{table}' lives in system '{tables[table].system}'; retention "
            "cleanup runs in the application database"
        )
    if table in tables and tables[table].on_erasure == "retain":
        raise ConfigError(f"{key}.table: '{table}' is a retain table and can never be cleaned up")
    if "days" not in raw:
        raise ConfigError(f"{key}.days: missing")
    return RetentionEntry(name, table, raw["timestamp"], _days(raw["days"], f"{key}.days"))


_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")  # an RFC 9110 token
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _parse_dashboard(raw: Mapping[str, Any]) -> DashboardSettings:
    allowed = {"demo_mode", "identity_header", "proxy_secret_header", "proxy_secret_env"}
    _unknown_keys(raw, allowed, "dashboard")
    defaults = DashboardSettings()
    names: dict[str, str] = {}
    for name, pattern, what in (
        ("identity_header", _HEADER_NAME, "an HTTP header name"),
        ("proxy_secret_header", _HEADER_NAME, "an HTTP header name"),
        ("proxy_secret_env", _ENV_NAME, "an environment variable name"),
    ):
        value = _expect(raw.get(name, getattr(defaults, name)), str, f"dashboard.{name}")
        if not pattern.fullmatch(value):
            raise ConfigError(f"dashboard.{name}: {value!r} is not {what}")
        names[name] = value
    if names["identity_header"].lower() == names["proxy_secret_header"].lower():
        raise ConfigError(
            "dashboard.proxy_secret_header: must differ from dashboard.identity_header"
        )
    return DashboardSettings(
        demo_mode=_expect(raw.get("demo_mode", False), bool, "dashboard.demo_mode"), **names
    )


def _resolve_url(url: str, base: Path | None) -> str:
    """Relative SQLite paths are taken from the policy file's folder, not the shell's."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and base is not None:
        rest = url[len(prefix) :]
        if rest and not rest.startswith("/") and not rest.startswith(":memory:"):
            return prefix + str((base / rest).resolve())
    return url


def parse_policy(
    data: Mapping[str, Any], path: Path | None = None, env: Mapping[str, str] | None = None
) -> Policy:
    env = os.environ if env is None else env
    base = path.parent if path is not None else None
    _unknown_keys(
        data,
        {
            "database",
            "app_database",
            "subjects",
            "tables",
            "buckets",
            "slack",
            "roles",
            "dashboard",
            "review",
            "dsar",
            "smtp",
            "retention",
            "exports",
            "audit",
            "systems",
        },
        "policy",
    )

    def section(name: str) -> dict[str, Any]:
        value = data.get(name, {})
        return _expect(value, dict, name)

    database_url = env.get("COMPLIANCE_DATABASE_URL") or section("database").get(
        "url", "sqlite:///var/compliance.store.engines"
    )
    app_database_url = env.get("COMPLIANCE_APP_DATABASE_URL") or section("app_database").get(
        "url", "sqlite:///var/demo_app.db"
    )
    _expect(database_url, str, "database.url")
    _expect(app_database_url, str, "app_database.url")
    export_dir = Path(
        env.get("COMPLIANCE_EXPORT_DIR") or section("exports").get("dir", "var/exports")
    )
    if not export_dir.is_absolute() and base is not None:
        export_dir = base / export_dir

    subjects_raw = section("subjects")
    _unknown_keys(subjects_raw, {"table", "key", "email"}, "subjects")
    subjects = Subjects(
        table=_expect(subjects_raw.get("table", "users"), str, "subjects.table"),
        key=_expect(subjects_raw.get("key", "id"), str, "subjects.key"),
        email=_optional_str(subjects_raw, "email", "subjects"),
    )

    app_url = _resolve_url(app_database_url, base)
    systems: dict[str, System] = {
        APP_SYSTEM: System(APP_SYSTEM, "sql", url=app_url, description="The application database")
    }
    for sname, sraw in section("systems").items():
        systems[sname] = parse_system(sname, sraw, env, lambda u: _resolve_url(u, base))

    tables = {name: _parse_table(name, raw) for name, raw in section("tables").items()}
    if not tables:
        raise ConfigError("tables: the data map is empty; map at least the subjects table")
    _check_via_chains(tables)
    _check_table_systems(tables, systems)
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

    buckets = {
        name: _parse_bucket(name, raw, tables, systems) for name, raw in section("buckets").items()
    }
    if DSAR_ERASURE_BUCKET in buckets:
        raise ConfigError(
            f"buckets.{DSAR_ERASURE_BUCKET}: reserved for erasure requests; choose another name"
        )
    retention_raw = section("retention")
    dsar_export_days = 30
    if "dsar_exports" in retention_raw:
        # Not a table: the age after which delivered export files are deleted.
        dsar_raw = retention_raw["dsar_exports"]
        _expect(dsar_raw, dict, "retention.dsar_exports")
        _unknown_keys(dsar_raw, {"days"}, "retention.dsar_exports")
        dsar_export_days = _days(dsar_raw.get("days", 30), "retention.dsar_exports.days")
    job_runs_days = 180
    if "job_runs" in retention_raw:
        # Not an application table: this tool's own log of job runs, in the compliance database.
        runs_raw = retention_raw["job_runs"]
        _expect(runs_raw, dict, "retention.job_runs")
        _unknown_keys(runs_raw, {"days"}, "retention.job_runs")
        job_runs_days = _days(runs_raw.get("days", 180), "retention.job_runs.days")
    retention = {
        name: _parse_retention(name, raw, tables)
        for name, raw in retention_raw.items()
        if name not in ("dsar_exports", "job_runs")
    }

    slack_raw = section("slack")
    _unknown_keys(
        slack_raw, {"production", "test_channel", "dashboard_url", "dsar_channel"}, "slack"
    )
    slack = SlackSettings(
        production=_expect(slack_raw.get("production", False), bool, "slack.production"),
        test_channel=_optional_str(slack_raw, "test_channel", "slack"),
        dashboard_url=_expect(
            slack_raw.get("dashboard_url", "http://localhost:8501"), str, "slack.dashboard_url"
        ),
        dsar_channel=_optional_str(slack_raw, "dsar_channel", "slack"),
    )

    roles: dict[str, tuple[str, ...]] = {}
    for role, members in section("roles").items():
        if role not in ("compliance_officer", "support", "manager"):
            raise ConfigError(
                f"roles.{_k(role)}: unknown role (known: compliance_officer, manager, support)"
            )
        _expect(members, list, f"roles.{role}")
        for i, member in enumerate(members):
            _expect(member, str, f"roles.{role}[{i}]")
        roles[role] = tuple(m.strip().lower() for m in members)

    dashboard = _parse_dashboard(section("dashboard"))
    review_raw = section("review")
    _unknown_keys(review_raw, {"four_eyes"}, "review")
    review = ReviewSettings(
        four_eyes=_expect(
            review_raw.get("four_eyes", not dashboard.demo_mode), bool, "review.four_eyes"
        )
    )
    dsar_raw = section("dsar")
    _unknown_keys(
        dsar_raw,
        {
            "erasure_review",
            "access_review",
            "identity_methods",
            "templates_dir",
            "max_attempts",
            "systems",
        },
        "dsar",
    )
    methods_raw = _expect(
        dsar_raw.get("identity_methods", list(DEFAULT_IDENTITY_METHODS)),
        list,
        "dsar.identity_methods",
    )
    methods = tuple(
        _expect(m, str, f"dsar.identity_methods[{i}]").strip() for i, m in enumerate(methods_raw)
    )
    if not methods or any(not m for m in methods) or len(set(methods)) != len(methods):
        raise ConfigError("dsar.identity_methods: give at least one method, each once, non-empty")
    templates_raw = _optional_str(dsar_raw, "templates_dir", "dsar")
    templates_dir = Path(templates_raw) if templates_raw else None
    if templates_dir is not None and not templates_dir.is_absolute() and base is not None:
        templates_dir = base / templates_dir
    max_attempts = _non_negative_int(dsar_raw.get("max_attempts", 3), "dsar.max_attempts")
    if max_attempts < 1:
        raise ConfigError("dsar.max_attempts: expected at least 1, got 0")
    dsar = DsarSettings(
        erasure_review=_expect(dsar_raw.get("erasure_review", True), bool, "dsar.erasure_review"),
        access_review=_expect(dsar_raw.get("access_review", True), bool, "dsar.access_review"),
        identity_methods=methods,
        templates_dir=templates_dir,
        max_attempts=max_attempts,
        systems=(
            parse_system_list(dsar_raw["systems"], "dsar.systems", systems)
            if "systems" in dsar_raw
            else None
        ),
    )
    smtp_raw = section("smtp")
    _unknown_keys(smtp_raw, {"host", "port", "sender", "username", "starttls"}, "smtp")
    smtp = SmtpSettings(
        host=_expect(smtp_raw.get("host", "localhost"), str, "smtp.host"),
        port=_non_negative_int(smtp_raw.get("port", 25), "smtp.port"),
        sender=_expect(smtp_raw.get("sender", "privacy@example.com"), str, "smtp.sender"),
        username=_optional_str(smtp_raw, "username", "smtp"),
        starttls=_expect(smtp_raw.get("starttls", False), bool, "smtp.starttls"),
    )
    audit_raw = section("audit")
    _unknown_keys(audit_raw, {"anchor_file", "ops_channel"}, "audit")
    anchor_raw = _optional_str(audit_raw, "anchor_file", "audit")
    anchor_file = None
    if anchor_raw is not None:
        if not anchor_raw.strip() or "\x00" in anchor_raw:
            raise ConfigError("audit.anchor_file: give a file path")
        anchor_file = Path(anchor_raw)
        if not anchor_file.is_absolute() and base is not None:
            anchor_file = base / anchor_file
    audit = AuditSettings(
        anchor_file=anchor_file, ops_channel=_optional_str(audit_raw, "ops_channel", "audit")
    )
    return Policy(
        path=path,
        database_url=_resolve_url(database_url, base),
        app_database_url=app_url,
        export_dir=export_dir,
        subjects=subjects,
        tables=tables,
        buckets=buckets,
        retention=retention,
        slack=slack,
        roles=roles,
        dashboard=dashboard,
        review=review,
        dsar=dsar,
        smtp=smtp,
        dsar_export_days=dsar_export_days,
        job_runs_days=job_runs_days,
        audit=audit,
        systems=systems,
    )


def config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("COMPLIANCE_CONFIG") or DEFAULT_CONFIG)


def load_policy(path: Path | str | None = None, env: Mapping[str, str] | None = None) -> Policy:
    path = Path(path) if path is not None else config_path(env)
    try:
        raw = path.read_bytes()
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
    return parse_policy(data, path.resolve(), env)


# ---------------------------------------------------------------- against the database


def check_against_database(
    policy: Policy, engine: Engine, engines: Mapping[str, Engine] | None = None
) -> list[str]:
    """Raise ConfigError for anything the data map names that its database lacks.

    ``engine`` is the application database; ``engines`` holds the other SQL systems by
    name (a system without one is not checked here: ``DataMap`` opens it and reflects).
    Returns warnings for retention entries whose table or column is missing (those
    entries are skipped by retention-cleanup rather than stopping every other job), and
    for foreign keys from kept data that block erasing the rows they reference. A foreign
    key whose ON DELETE / ON UPDATE action would change kept rows is a ConfigError.
    """
    inspectors = {APP_SYSTEM: inspect(engine)}
    for name, other in (engines or {}).items():
        if name != APP_SYSTEM:
            inspectors[name] = inspect(other)
    existing_in = {name: set(i.get_table_names()) for name, i in inspectors.items()}
    existing = existing_in[APP_SYSTEM]
    columns: dict[str, dict[str, Any]] = {}

    def where(table: str) -> str:
        system = policy.tables[table].system if table in policy.tables else APP_SYSTEM
        return "the application database" if system == APP_SYSTEM else f"system '{system}'"

    def insp(table: str) -> Any:
        system = policy.tables[table].system if table in policy.tables else APP_SYSTEM
        return inspectors[system]

    def cols(table: str) -> dict[str, Any]:
        """Column name -> reflected type."""
        if table not in columns:
            columns[table] = {c["name"]: c["type"] for c in insp(table).get_columns(table)}
        return columns[table]

    def need_time(table: str, column: str, key: str) -> None:
        # Ages are compared with a cutoff; on a text or number column every row would look
        # "old" (or none would), so a rule must name a date or time column.
        kind = cols(table)[column]
        if not isinstance(kind, Date | DateTime):
            raise ConfigError(
                f"{key}: column '{table}.{column}' is {kind}, not a date or time column"
            )

    def need_column(table: str, column: str, key: str) -> None:
        if column not in cols(table):
            raise ConfigError(f"{key}: table '{table}' has no column '{column}' in {where(table)}")

    checked = {n: t for n, t in policy.tables.items() if t.system in inspectors}
    for name, table in checked.items():
        if name not in existing_in[table.system]:
            raise ConfigError(f"tables.{name}: no such table in {where(name)}")
    subjects = policy.subjects
    need_column(subjects.table, subjects.key, "subjects.key")
    if subjects.email:
        need_column(subjects.table, subjects.email, "subjects.email")
    for name, table in checked.items():
        key = f"tables.{name}"
        if table.subject_column:
            need_column(name, table.subject_column, f"{key}.subject_column")
        if table.via:
            need_column(name, table.via.column, f"{key}.via.column")
            if table.via.parent_column:
                need_column(table.via.table, table.via.parent_column, f"{key}.via.parent_column")
            else:
                pk = insp(table.via.table).get_pk_constraint(table.via.table)
                pk = pk.get("constrained_columns") or []
                if len(pk) != 1:
                    raise ConfigError(
                        f"{key}.via.parent_column: '{table.via.table}' has no single-column "
                        "primary key, so name the column the via points at"
                    )
        for column in table.anonymize:
            need_column(name, column, f"{key}.anonymize.{column}")
        for column in table.export_exclude:
            need_column(name, column, f"{key}.export_exclude")
        if table.on_erasure == "delete" or table.anonymize:
            pk = insp(name).get_pk_constraint(name).get("constrained_columns") or []
            if not pk and table.anonymize:
                raise ConfigError(f"{key}: anonymizing needs a primary key on '{name}'")
    for bname, bucket in policy.buckets.items():
        for i, rule in enumerate(bucket.rules):
            if isinstance(rule, AgeRule):
                key = f"buckets.{bname}.rules[{i}].timestamp"
                need_column(rule.table, rule.timestamp, key)
                need_time(rule.table, rule.timestamp, key)
        hidden = (
            policy.tables[subjects.table].export_exclude if subjects.table in policy.tables else ()
        )
        for i, column in enumerate(bucket.review_columns):
            key = f"buckets.{bname}.review_columns[{i}]"
            need_column(subjects.table, column, key)
            if column in hidden:
                raise ConfigError(
                    f"{key}: '{column}' is in tables.{subjects.table}.export_exclude, so it is "
                    "never shown to anyone"
                )
    # Referential actions are code paths too: none may reach retained or unmapped rows.
    from compliance.policy.cascades import check_foreign_keys, foreign_keys

    warnings = [block.advice for block in check_foreign_keys(policy, foreign_keys(engine))]
    for rname, entry in policy.retention.items():
        if entry.table not in existing:
            warnings.append(f"retention.{rname}.table: no table '{entry.table}'; entry skipped")
        elif entry.timestamp not in cols(entry.table):
            warnings.append(
                f"retention.{rname}.timestamp: table '{entry.table}' has no column "
                f"'{entry.timestamp}'; entry skipped"
            )
        else:
            need_time(entry.table, entry.timestamp, f"retention.{rname}.timestamp")
    return warnings
