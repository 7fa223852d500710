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
from typing import Any

from compliance.errors import ConfigError

APP_SYSTEM = "app_database"
SYSTEM_KINDS = ("sql", "webhook", "manual")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class System:
    """One ``[systems.NAME]`` entry (or the application database)."""

    name: str
    kind: str
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
        return self.kind == "sql"


def _str(raw: Mapping[str, Any], name: str, key: str) -> str | None:
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key}.{name}: expected a non-empty string, got {value!r}")
    return value.strip()


def _http_url(value: str, key: str) -> str:
    if not re.match(r"^https?://[^\s/]+", value):
        raise ConfigError(f"{key}: '{value}' is not an http:// or https:// URL")
    return value


def parse_system(
    name: str,
    raw: Any,
    env: Mapping[str, str],
    resolve_url: Any,
) -> System:
    """Check one ``[systems.NAME]`` table; ``resolve_url`` anchors relative SQLite paths."""
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
    kind = raw.get("kind")
    if kind not in SYSTEM_KINDS:
        raise ConfigError(f"{key}.kind: missing or unknown (one of {', '.join(SYSTEM_KINDS)})")
    common = {"kind", "description"}
    allowed = {
        "sql": common | {"url", "url_env"},
        "webhook": common | {"url", "secret_env", "status_url", "max_attempts", "timeout_seconds"},
        "manual": common | {"instructions"},
    }[kind]
    extra = sorted(set(raw) - allowed)
    if extra:
        raise ConfigError(
            f"{key}.{extra[0]}: unknown key for a {kind} system (allowed: "
            f"{', '.join(sorted(allowed))})"
        )
    description = _str(raw, "description", key) or ""
    if kind == "sql":
        url, url_env = _str(raw, "url", key), _str(raw, "url_env", key)
        if (url is None) == (url_env is None):
            raise ConfigError(f"{key}: give exactly one of url or url_env")
        if url_env is not None:
            if not _ENV_NAME.match(url_env):
                raise ConfigError(f"{key}.url_env: '{url_env}' is not an environment variable name")
            url = env.get(url_env)
            if not url:
                raise ConfigError(
                    f"{key}.url_env: the environment variable {url_env} is not set "
                    "(it should hold the database URL)"
                )
        assert url is not None
        return System(name, kind, url=resolve_url(url), url_env=url_env, description=description)
    if kind == "webhook":
        url = _str(raw, "url", key)
        if url is None:
            raise ConfigError(f"{key}.url: missing (the endpoint requests are sent to)")
        secret_env = _str(raw, "secret_env", key)
        if secret_env is None:
            raise ConfigError(
                f"{key}.secret_env: missing (the environment variable holding the signing secret)"
            )
        if not _ENV_NAME.match(secret_env):
            raise ConfigError(
                f"{key}.secret_env: '{secret_env}' is not an environment variable name"
            )
        status_url = _str(raw, "status_url", key)
        attempts = raw.get("max_attempts", DEFAULT_MAX_ATTEMPTS)
        if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= 50:
            raise ConfigError(f"{key}.max_attempts: a whole number from 1 to 50, got {attempts!r}")
        timeout = raw.get("timeout_seconds", DEFAULT_TIMEOUT_S)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise ConfigError(f"{key}.timeout_seconds: a number from 0 to 300, got {timeout!r}")
        if not 0 < timeout <= 300:
            raise ConfigError(f"{key}.timeout_seconds: a number from 0 to 300, got {timeout!r}")
        return System(
            name,
            kind,
            url=_http_url(url, f"{key}.url"),
            secret_env=secret_env,
            status_url=_http_url(status_url, f"{key}.status_url") if status_url else None,
            description=description,
            max_attempts=attempts,
            timeout_s=float(timeout),
        )
    instructions = _str(raw, "instructions", key)
    if instructions is None:
        raise ConfigError(f"{key}.instructions: missing (what the person has to do, step by step)")
    return System(name, kind, instructions=instructions, description=description)


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
