"""What each section of the policy file may hold, and how each value in it is checked.

One ``Field`` table per section (read by ``fields.read_section``, so a new key is one line),
the checks its fields name, and the small parsing helpers they share. ``loader`` reads the
sections with them and builds the policy."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compliance.errors import ConfigError, printable
from compliance.policy.fields import (
    Field,
    expect,
    key_name,
    read_section,
)
from compliance.policy.model import (
    DEFAULT_ALERT_DAYS_OF_MONTH,
    DEFAULT_DSAR_EXPORT_DAYS,
    DEFAULT_IDENTITY_METHODS,
    DEFAULT_JOB_RUNS_DAYS,
    DEFAULT_REJECTION_COOLOFF_DAYS,
    AgeRule,
    Bucket,
    DashboardSettings,
    DsarSettings,
    MappedTable,
    Rule,
    SlackSettings,
    SmtpSettings,
    SqlRule,
    Via,
)
from compliance.policy.strategies import (
    ERASURE_ACTIONS,
    STRATEGIES,
    ErasureAction,
    strategy_options,
)
from compliance.policy.systems import (
    APP_SYSTEM,
    System,
    parse_system_list,
)

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


def resolve_url(url: str, base: Path | None) -> str:
    """Relative SQLite paths are taken from the policy file's folder, not the shell's."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and base is not None:
        rest = url[len(prefix) :]
        if rest and not rest.startswith("/") and not rest.startswith(":memory:"):
            return prefix + str((base / rest).resolve())
    return url


def under_base(path: Path, base: Path | None) -> Path:
    """Relative file paths are taken from the policy file's folder, not the shell's."""
    return base / path if not path.is_absolute() and base is not None else path


@dataclass(frozen=True)
class ParseContext:
    """What a section's checks may need: the policy file's folder and what is declared."""

    base: Path | None
    tables: Mapping[str, MappedTable] = field(default_factory=dict)
    systems: Mapping[str, System] = field(default_factory=dict)


# ---------------------------------------------------------------- field checks
# Each takes the typed value, its full key and the ParseContext; it returns the value kept.


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


def _bucket_tables(value: list[Any], key: str, context: ParseContext) -> tuple[str, ...]:
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


def _rules(value: list[Any], key: str, context: ParseContext) -> tuple[Rule, ...]:
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


def _system_list(value: Any, key: str, context: ParseContext) -> tuple[str, ...]:
    return parse_system_list(value, key, context.systems)


def _days_of_month(value: Any, key: str, _context: Any) -> tuple[int, ...]:
    for i, day in enumerate(value):
        if not 1 <= day <= 31:
            raise ConfigError(f"{key}[{i}]: {day} is not a day of a month")
    return tuple(value)


def _retention_table(table: str, key: str, context: ParseContext) -> str:
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


def _templates_dir(value: str, key: str, context: ParseContext) -> Path | None:
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


def _file_path(value: str, key: str, context: ParseContext) -> Path:
    if not value.strip() or "\x00" in value:
        raise ConfigError(f"{key}: give a file path")
    return under_base(Path(value), context.base)


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


def _scan_accept(value: list[Any], key: str, context: ParseContext) -> dict[str, str]:
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

TABLE_FIELDS = (
    Field("on_erasure", missing=f"missing (one of {', '.join(ERASURE_ACTIONS)})",
          check=_erasure_action),
    Field("subject_column"),
    Field("via", dict, check=_via),
    Field("anonymize", dict, default={}, check=_strategies),
    Field("export_exclude", list, default=(), items=str, check=_tuple),
    Field("legal_basis"),
    Field("system", default=APP_SYSTEM),
    Field("portable", bool, default=False),
    Field("subject"),
)  # fmt: skip
BUCKET_FIELDS = (
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
    Field("subject"),
)  # fmt: skip
SQL_RULE_FIELDS = (
    Field("sql", missing="missing", check=lambda sql, key, _: check_select_only(sql, key)),
    Field("description"),
)
AGE_RULE_FIELDS = (  # each one required: _parse_rule names every missing one at once
    Field("table", missing="missing"),
    Field("timestamp", missing="missing"),
    Field("older_than_days", int, missing="missing", check=_days_check),
)
RETENTION_FIELDS = (
    Field("table", missing=_NOT_A_STRING, wrong=_NOT_A_STRING, check=_retention_table),
    Field("timestamp", missing=_NOT_A_STRING, wrong=_NOT_A_STRING),
    Field("days", int, missing="missing", check=_days_check),
)
#: [retention.dsar_exports]: not a table, the age after which delivered exports are deleted.
DSAR_EXPORTS_FIELDS = (Field("days", int, default=DEFAULT_DSAR_EXPORT_DAYS, check=_days_check),)
#: [retention.job_runs]: this tool's own log of job runs, in the compliance database.
JOB_RUNS_FIELDS = (Field("days", int, default=DEFAULT_JOB_RUNS_DAYS, check=_days_check),)
SLACK_FIELDS = (
    Field("production", bool, default=SlackSettings.production),
    Field("test_channel"),
    Field("dashboard_url", default=SlackSettings.dashboard_url),
    Field("dsar_channel"),
)
DASHBOARD_FIELDS = (
    Field("identity_header", default=DashboardSettings.identity_header, check=_header_name),
    Field("proxy_secret_header", default=DashboardSettings.proxy_secret_header,
          check=_header_name),
    Field("proxy_secret_env", default=DashboardSettings.proxy_secret_env, check=_env_name),
    Field("demo_mode", bool, default=DashboardSettings.demo_mode),
)  # fmt: skip
#: four_eyes has no fixed default: it is on unless the dashboard runs in demo mode.
REVIEW_FIELDS = (Field("four_eyes", bool),)
DSAR_FIELDS = (
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
SMTP_FIELDS = (
    Field("host", default=SmtpSettings.host),
    Field("port", int, default=SmtpSettings.port, check=_non_negative),
    Field("sender", default=SmtpSettings.sender),
    Field("username"),
    Field("starttls", bool, default=SmtpSettings.starttls),
    Field("outbox", check=_file_path),
)
AUDIT_FIELDS = (Field("anchor_file", check=_file_path), Field("ops_channel"))
SCAN_FIELDS = (
    Field("accept", list, default=(), check=_scan_accept),
    Field("ops_channel", check=_text),
)
RECORDS_FIELDS = (
    Field("controller", check=_text),
    Field("dpo_contact", check=_text),
    Field("security_measures", list, default=(), items=str, check=_texts),
)
SECTIONS = frozenset(
    {"database", "app_database", "subjects", "tables", "buckets", "slack", "roles",
     "dashboard", "review", "dsar", "smtp", "retention", "exports", "audit", "systems",
     "scan", "records", "jurisdictions"}
)  # fmt: skip


def _parse_rule(raw: Any, key: str) -> Rule:
    expect(raw, dict, key)
    if "sql" in raw:
        return SqlRule(**read_section(raw, SQL_RULE_FIELDS, key))
    missing = [f.name for f in AGE_RULE_FIELDS if f.name not in raw]
    if missing:
        raise ConfigError(
            f"{key}: a rule needs either sql or table, timestamp and older_than_days "
            f"(missing {', '.join(missing)})"
        )
    return AgeRule(**read_section(raw, AGE_RULE_FIELDS, key))
