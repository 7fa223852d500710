"""Systems: the places a subject's data lives, beyond the application database.

A request is done only when every system that holds the subject's data says so. Three
kinds exist: ``sql`` (a database reached through the data map, like the application
database), ``webhook`` (an HTTP service told to erase or export, answering now or later)
and ``manual`` (a step a person does by hand and confirms on the dashboard). The
application database is always the SQL system named ``app_database``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from compliance.errors import ConfigError, quoted
from compliance.policy.fields import Field, read_section
from compliance.urls import url_problem

APP_SYSTEM = "app_database"


class SystemKind(StrEnum):
    """How a system is reached: erased in its own database, called, or done by a person."""

    SQL = "sql"
    WEBHOOK = "webhook"
    MANUAL = "manual"


SYSTEM_KINDS = tuple(kind.value for kind in SystemKind)
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class System:
    """One ``[systems.NAME]`` entry (or the application database)."""

    name: str
    kind: SystemKind
    #: sql: the database URL; webhook: the endpoint requests are POSTed to.
    url: str | None = None
    #: sql: the environment variable the URL came from, if it came from one.
    url_env: str | None = None
    #: webhook: the environment variable holding the HMAC secret (never the secret itself).
    secret_env: str | None = None
    #: webhook: where an accepted-for-later task is polled; ``{reference}`` and ``{key}``
    #: are filled in. Without it the service must call back.
    status_url: str | None = None
    #: manual: what the person has to do, shown on the dashboard's task list.
    instructions: str | None = None
    description: str = ""
    #: webhook: attempts before a task is failed and waits for an officer's retry.
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    timeout_s: float = DEFAULT_TIMEOUT_S

    @property
    def is_sql(self) -> bool:
        return self.kind == SystemKind.SQL


_TEXT = "expected a non-empty string, got {value!r}"


def _text(value: str, key: str, _context: Any) -> str:
    if not value.strip():
        raise ConfigError(f"{key}: {_TEXT.format(value=value)}")
    return value.strip()


def _http_url(value: str, key: str, context: Any = None) -> str:
    value = _text(value, key, context)
    problem = url_problem(value)
    if problem:
        raise ConfigError(f"{key}: {quoted(value)} {problem}")
    return value


def check_webhook_transport(systems: Mapping[str, System], *, demo_mode: bool) -> None:
    """Webhooks carry subjects' emails and signed keys: https, unless to loopback or a demo."""
    if demo_mode:
        return
    for system in systems.values():
        if system.kind != SystemKind.WEBHOOK:
            continue
        for name, url in (("url", system.url), ("status_url", system.status_url)):
            problem = url and url_problem(url, https_outside_loopback=True)
            if problem:
                raise ConfigError(f"systems.{system.name}.{name}: {quoted(url)} {problem}")


def _env_name(value: str, key: str, context: Any = None) -> str:
    value = _text(value, key, context)
    if not _ENV_NAME.match(value):
        raise ConfigError(f"{key}: '{value}' is not an environment variable name")
    return value


_ATTEMPTS = "a whole number from 1 to 50, got {value!r}"
_TIMEOUT = "a number from 0 to 300, got {value!r}"


def _attempts(value: int, key: str, _context: Any) -> int:
    if not 1 <= value <= 50:
        raise ConfigError(f"{key}: {_ATTEMPTS.format(value=value)}")
    return value


def _timeout(value: float, key: str, _context: Any) -> float:
    if not 0 < value <= 300:
        raise ConfigError(f"{key}: {_TIMEOUT.format(value=value)}")
    return float(value)


# One line a key, by kind; every kind also has ``kind`` and ``description``.
_DESCRIPTION = Field("description", wrong=_TEXT, check=_text)
_KIND_FIELDS = {
    SystemKind.SQL: (
        Field("url", wrong=_TEXT, check=_text),
        Field("url_env", wrong=_TEXT, check=_env_name),
    ),
    SystemKind.WEBHOOK: (
        Field("url", wrong=_TEXT, missing="missing (the endpoint requests are sent to)",
              check=_http_url),
        Field("secret_env", wrong=_TEXT, check=_env_name,
              missing="missing (the environment variable holding the signing secret)"),
        Field("status_url", wrong=_TEXT, check=_http_url),
        Field("max_attempts", int, default=DEFAULT_MAX_ATTEMPTS, wrong=_ATTEMPTS, check=_attempts),
        Field("timeout_seconds", (int, float), default=DEFAULT_TIMEOUT_S, wrong=_TIMEOUT,
              check=_timeout),
    ),
    SystemKind.MANUAL: (
        Field("instructions", wrong=_TEXT,
              missing="missing (what the person has to do, step by step)", check=_text),
    ),
}  # fmt: skip


def _check_name(name: str, raw: Any) -> str:
    """The section's key, once the entry is a table under a name a system may have."""
    key = f"systems.{name}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{key}: expected a table, got {raw!r}")
    if name == APP_SYSTEM:
        raise ConfigError(f"{key}: reserved for [app_database]; choose another name")
    if not _NAME.match(name):
        raise ConfigError(
            f"systems.{name!r}: a system name is lower-case letters, digits and _ "
            "(it names a folder in exports)"
        )
    return key


def _check_kind(raw: Mapping[str, Any], key: str) -> SystemKind:
    given = raw.get("kind")
    if given not in SYSTEM_KINDS:
        raise ConfigError(f"{key}.kind: missing or unknown (one of {', '.join(SYSTEM_KINDS)})")
    kind = SystemKind(given)
    allowed = {"kind", _DESCRIPTION.name, *(f.name for f in _KIND_FIELDS[kind])}
    extra = sorted(set(raw) - allowed)
    if extra:
        raise ConfigError(
            f"{key}.{extra[0]}: unknown key for a {kind} system (allowed: "
            f"{', '.join(sorted(allowed))})"
        )
    return kind


def _sql_url(values: Mapping[str, Any], key: str, env: Mapping[str, str]) -> str:
    """The database URL, given in the file or read from the environment variable it names."""
    url, url_env = values["url"], values["url_env"]
    if (url is None) == (url_env is None):
        raise ConfigError(f"{key}: give exactly one of url or url_env")
    if url_env is None:
        return url
    url = env.get(url_env)
    if not url:
        raise ConfigError(
            f"{key}.url_env: the environment variable {url_env} is not set "
            "(it should hold the database URL)"
        )
    return url


def parse_system(
    name: str,
    raw: Any,
    env: Mapping[str, str],
    resolve_url: Any,
) -> System:
    """Check one ``[systems.NAME]`` table; ``resolve_url`` anchors relative SQLite paths."""
    key = _check_name(name, raw)
    kind = _check_kind(raw, key)
    fields = (_DESCRIPTION, *_KIND_FIELDS[kind])
    values = read_section(raw, fields, key, closed=False)
    description = values.pop("description") or ""
    if kind == SystemKind.SQL:
        url = resolve_url(_sql_url(values, key, env))
        return System(name, kind, url=url, url_env=values["url_env"], description=description)
    if kind == SystemKind.WEBHOOK:
        values["timeout_s"] = values.pop("timeout_seconds")
    return System(name, kind, description=description, **values)


def parse_system_list(raw: Any, key: str, systems: Mapping[str, System]) -> tuple[str, ...]:
    """A bucket's (or [dsar]'s) ``systems``: webhook and manual systems it also reaches.

    SQL systems are reached through the tables a bucket lists, so naming one here would
    say the same thing twice, or contradict the tables; it is refused.
    """
    if not isinstance(raw, list):
        raise ConfigError(f"{key}: expected a list of system names, got {raw!r}")
    names: list[str] = []
    for i, name in enumerate(raw):
        if not isinstance(name, str):
            raise ConfigError(f"{key}[{i}]: expected a system name, got {name!r}")
        if name not in systems:
            known = ", ".join(sorted(n for n, s in systems.items() if not s.is_sql)) or "none"
            raise ConfigError(f"{key}[{i}]: '{name}' is not a declared system (known: {known})")
        if systems[name].is_sql:
            raise ConfigError(
                f"{key}[{i}]: '{name}' is an sql system; it is reached through the tables "
                "listed in tables"
            )
        if name in names:
            raise ConfigError(f"{key}[{i}]: '{name}' is listed twice")
        names.append(name)
    return tuple(names)
