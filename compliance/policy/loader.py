"""The policy file (``compliance.toml``): every retention period and deletion rule in one place.

Loading is two steps. ``load_policy`` parses and checks what can be checked from the
file alone, into the dataclasses of ``compliance.policy.model``;
``compliance.policy.database_check.check_against_database`` reflects the application
database and checks that every table and column the policy names exists there. Both raise
``ConfigError`` naming the offending key, so a typo is caught before any job touches data.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compliance.errors import ConfigError, printable
from compliance.free_text import not_utf8
from compliance.policy.exports import parse_exports
from compliance.policy.fields import (
    Field,
    check_name,
    expect,
    key_name,
    read_section,
    unknown_keys,
)
from compliance.policy.jurisdictions import (
    parse_jurisdictions,
)
from compliance.policy.model import (
    DEFAULT_ALERT_DAYS_OF_MONTH,
    DEFAULT_APP_DATABASE_URL,
    DEFAULT_CONFIG,
    DEFAULT_DATABASE_URL,
    DEFAULT_DSAR_EXPORT_DAYS,
    DEFAULT_EXPORT_DIR,
    DEFAULT_IDENTITY_METHODS,
    DEFAULT_JOB_RUNS_DAYS,
    DEFAULT_REJECTION_COOLOFF_DAYS,
    DSAR_ERASURE_BUCKET,
    AgeRule,
    AuditSettings,
    Bucket,
    DashboardSettings,
    DsarSettings,
    MappedTable,
    Policy,
    RecordsSettings,
    RetentionEntry,
    ReviewSettings,
    Rule,
    ScanSettings,
    SlackSettings,
    SmtpSettings,
    SqlRule,
    Subjects,
    Via,
)
from compliance.policy.strategies import (
    ERASURE_ACTIONS,
    MAX_ENV_BYTES,
    STRATEGIES,
    ErasureAction,
    strategy_options,
)
from compliance.policy.subject_types import (
    assign_subjects,
    bucket_subject,
    check_subjects_table,
    parse_subject_types,
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
    Field("subject"),
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
    Field("subject"),
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
    values["subject"] = values["subject"] or ""  # "": not said; _assign_subjects decides
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


def _parse_tables(
    raw: Mapping[str, Any], types: Mapping[str, Subjects], systems: Mapping[str, System]
) -> dict[str, MappedTable]:
    tables = {name: _parse_table(name, t) for name, t in raw.items()}
    if not tables:
        raise ConfigError("tables: the data map is empty; map at least the subjects table")
    _check_via_chains(tables)
    _check_table_systems(tables, systems)
    for subjects in types.values():
        check_subjects_table(tables, subjects)
    return assign_subjects(tables, types)


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
    check_name(name, "buckets")
    return Bucket(
        name=name, **read_section(raw, _BUCKET_FIELDS, f"buckets.{key_name(name)}", context)
    )


def _parse_buckets(
    raw: Mapping[str, Any], context: _Context, types: Mapping[str, Subjects]
) -> dict[str, Bucket]:
    buckets = {
        name: bucket_subject(_parse_bucket(name, b, context), context.tables)
        for name, b in raw.items()
    }
    reserved = [f"{DSAR_ERASURE_BUCKET}_{t}" for t in types]
    for name in buckets:
        if name == DSAR_ERASURE_BUCKET or name in reserved:
            raise ConfigError(f"buckets.{name}: reserved for erasure requests; choose another name")
    return buckets


def _parse_retention(name: str, raw: Any, context: _Context) -> RetentionEntry:
    check_name(name, "retention")
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
    for section in ("database", "app_database"):
        unknown_keys(_section(data, section), {"url"}, section)
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
    subject_types = parse_subject_types(data.get("subjects", {}))
    systems = _parse_systems(_section(data, "systems"), app_url, env, base)
    tables = _parse_tables(_section(data, "tables"), subject_types, systems)
    context = _Context(base, tables, systems)
    buckets = _parse_buckets(_section(data, "buckets"), context, subject_types)
    retention, dsar_export_days, job_runs_days = _parse_retention_section(
        _section(data, "retention"), context
    )
    settings = _parse_settings(data, context)
    raw_jurisdictions = _section(data, "jurisdictions")
    for name in raw_jurisdictions:
        check_name(name, "jurisdictions")
    jurisdictions = parse_jurisdictions(raw_jurisdictions, settings["dsar"].default_jurisdiction)
    check_webhook_transport(systems, demo_mode=settings["dashboard"].demo_mode)
    named = [s.secret_env or s.url_env for s in systems.values()]
    check_environment(env, [settings["dashboard"].proxy_secret_env, *filter(None, named)])
    return Policy(
        path=path,
        database_url=_resolve_url(database_url, base),
        app_database_url=app_url,
        export_dir=export_dir,
        subject_types=subject_types,
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
