"""The policy file (``compliance.toml``): every retention period and deletion rule in one place.

Loading is two steps. ``load_policy`` parses and checks what can be checked from the
file alone (each section's fields and checks in ``compliance.policy.sections``), into the
dataclasses of ``compliance.policy.model``;
``compliance.policy.database_check.check_against_database`` reflects the application
database and checks that every table and column the policy names exists there. Both raise
``ConfigError`` naming the offending key, so a typo is caught before any job touches data.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from compliance.errors import ConfigError
from compliance.free_text import not_utf8
from compliance.policy.exports import parse_exports
from compliance.policy.fields import (
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
    DEFAULT_APP_DATABASE_URL,
    DEFAULT_CONFIG,
    DEFAULT_DATABASE_URL,
    DEFAULT_EXPORT_DIR,
    DSAR_ERASURE_BUCKET,
    AuditSettings,
    Bucket,
    DashboardSettings,
    DsarSettings,
    MappedTable,
    Policy,
    RecordsSettings,
    RetentionEntry,
    ReviewSettings,
    ScanSettings,
    SlackSettings,
    SmtpSettings,
    Subjects,
)
from compliance.policy.sections import (
    AUDIT_FIELDS,
    BUCKET_FIELDS,
    DASHBOARD_FIELDS,
    DSAR_EXPORTS_FIELDS,
    DSAR_FIELDS,
    JOB_RUNS_FIELDS,
    RECORDS_FIELDS,
    RETENTION_FIELDS,
    REVIEW_FIELDS,
    SCAN_FIELDS,
    SECTIONS,
    SLACK_FIELDS,
    SMTP_FIELDS,
    TABLE_FIELDS,
    ParseContext,
    resolve_url,
    under_base,
)
from compliance.policy.strategies import (
    MAX_ENV_BYTES,
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
)
from compliance.roles import ROLES

# ---------------------------------------------------------------- sections


def _parse_table(name: str, raw: Any) -> MappedTable:
    key = f"tables.{key_name(name)}"
    values = read_section(raw, TABLE_FIELDS, key)
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


def _parse_bucket(name: str, raw: Any, context: ParseContext) -> Bucket:
    check_name(name, "buckets")
    return Bucket(
        name=name, **read_section(raw, BUCKET_FIELDS, f"buckets.{key_name(name)}", context)
    )


def _parse_buckets(
    raw: Mapping[str, Any], context: ParseContext, types: Mapping[str, Subjects]
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


def _parse_retention(name: str, raw: Any, context: ParseContext) -> RetentionEntry:
    check_name(name, "retention")
    key = f"retention.{key_name(name)}"
    return RetentionEntry(name=name, **read_section(raw, RETENTION_FIELDS, key, context))


def _parse_retention_section(
    raw: Mapping[str, Any], context: ParseContext
) -> tuple[dict[str, RetentionEntry], int, int]:
    """The [retention.NAME] table entries, then the days for DSAR exports and job runs."""
    special = {"dsar_exports": DSAR_EXPORTS_FIELDS, "job_runs": JOB_RUNS_FIELDS}
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
    values = read_section(raw, DASHBOARD_FIELDS, "dashboard")
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
        systems[name] = parse_system(name, system, env, lambda u: resolve_url(u, base))
    return systems


def parse_policy(
    data: Mapping[str, Any], path: Path | None = None, env: Mapping[str, str] | None = None
) -> Policy:
    env = os.environ if env is None else env
    base = path.parent if path is not None else None
    check_shape(data)
    check_environment(env, (n for n in env if n.startswith("COMPLIANCE_") or n in _SECRETS))
    unknown_keys(data, set(SECTIONS), "policy")
    for section in ("database", "app_database"):
        unknown_keys(_section(data, section), {"url"}, section)
    database_url = _from_env_or_file(
        env, "COMPLIANCE_DATABASE_URL", data, "database.url", DEFAULT_DATABASE_URL
    )
    app_url = resolve_url(
        _from_env_or_file(
            env, "COMPLIANCE_APP_DATABASE_URL", data, "app_database.url", DEFAULT_APP_DATABASE_URL
        ),
        base,
    )
    export_dir = under_base(
        Path(
            _from_env_or_file(env, "COMPLIANCE_EXPORT_DIR", data, "exports.dir", DEFAULT_EXPORT_DIR)
        ),
        base,
    )
    subject_types = parse_subject_types(data.get("subjects", {}))
    systems = _parse_systems(_section(data, "systems"), app_url, env, base)
    tables = _parse_tables(_section(data, "tables"), subject_types, systems)
    context = ParseContext(base, tables, systems)
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
        database_url=resolve_url(database_url, base),
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


def _parse_settings(data: Mapping[str, Any], context: ParseContext) -> dict[str, Any]:
    """The sections that only configure people and channels: slack, roles, dashboard…"""
    slack = SlackSettings(**read_section(data.get("slack", {}), SLACK_FIELDS, "slack"))
    roles = _parse_roles(_section(data, "roles"))
    dashboard = _parse_dashboard(data.get("dashboard", {}))
    four_eyes = read_section(data.get("review", {}), REVIEW_FIELDS, "review")["four_eyes"]
    review = ReviewSettings(not dashboard.demo_mode if four_eyes is None else four_eyes)
    dsar = DsarSettings(**read_section(data.get("dsar", {}), DSAR_FIELDS, "dsar", context))
    smtp = SmtpSettings(
        **read_section(data.get("smtp", {}), SMTP_FIELDS, "smtp", context),
        configured="smtp" in data,
    )
    audit = AuditSettings(**read_section(data.get("audit", {}), AUDIT_FIELDS, "audit", context))
    scan = ScanSettings(**read_section(data.get("scan", {}), SCAN_FIELDS, "scan", context))
    records = RecordsSettings(**read_section(data.get("records", {}), RECORDS_FIELDS, "records"))
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
