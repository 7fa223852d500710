"""Reading a policy section from a table of its keys, so a new key is one line.

Each section of ``compliance.toml`` is declared as a tuple of ``Field``: the key, the type
it must have, its default, and any further check. ``read_section`` turns a raw TOML table
into checked values and raises ``ConfigError`` naming the offending key, so every section
reports a wrong type, a missing key or an unknown key in the same words.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from compliance.errors import ConfigError

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def key_name(name: object) -> str:
    """A key as TOML would write it, so odd names (spaces, newlines) stay on one line."""
    text = str(name)
    return text if _BARE_KEY.fullmatch(text) else json.dumps(text, ensure_ascii=False)


def expect(value: Any, kind: type | tuple[type, ...], key: str) -> Any:
    if isinstance(value, bool) and kind in (int, (int,)):
        raise ConfigError(f"{key}: expected a whole number, got {value!r}")
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ConfigError(f"{key}: expected {names}, got {value!r}")
    return value


def unknown_keys(section: Mapping[str, Any], allowed: set[str], key: str) -> None:
    extra = sorted(set(section) - allowed)
    if extra:
        raise ConfigError(
            f"{key}.{key_name(extra[0])}: unknown key (allowed: {', '.join(sorted(allowed))})"
        )


#: A check takes the typed value, its full key and the reader's context; returns the value kept.
Check = Callable[[Any, str, Any], Any]


@dataclass(frozen=True)
class Field:
    """One key of a section: required (``missing``), defaulted (``default``) or optional.

    Only an optional key may be given as ``None`` (a Python caller's "not set").
    """

    name: str
    kind: type | tuple[type, ...] = str
    #: Used when the key is absent; it skips the type check but goes through ``check``.
    #: Without a default or ``missing`` the key is optional: absent, it reads as None.
    default: Any = None
    #: Set for a required key: what the error says after "KEY: " when it is absent.
    missing: str | None = None
    #: The type every item of a list must have.
    items: type | None = None
    #: Replaces "expected TYPE, got VALUE" on a wrong type; ``{value!r}`` is filled in.
    wrong: str | None = None
    check: Check | None = None


def _is(value: Any, kind: type | tuple[type, ...]) -> bool:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)


def _typed(value: Any, spec: Field, key: str) -> Any:
    if spec.wrong is not None:
        if not _is(value, spec.kind):
            raise ConfigError(f"{key}: " + spec.wrong.format(value=value))
        return value
    expect(value, spec.kind, key)
    for i, item in enumerate(value if spec.items is not None else ()):
        expect(item, spec.items, f"{key}[{i}]")  # type: ignore[arg-type]
    return value


def read_field(raw: Mapping[str, Any], spec: Field, section: str, context: Any = None) -> Any:
    """One key's value, typed and checked, or its default."""
    key = f"{section}.{spec.name}"
    optional = spec.default is None and spec.missing is None
    if spec.name in raw and not (optional and raw[spec.name] is None):
        value = _typed(raw[spec.name], spec, key)
    elif spec.missing is not None:
        raise ConfigError(f"{key}: {spec.missing}")
    elif spec.default is None:
        return None
    else:
        value = spec.default
    return spec.check(value, key, context) if spec.check is not None else value


def read_section(
    raw: Any,
    fields: Sequence[Field],
    section: str,
    context: Any = None,
    *,
    closed: bool = True,
) -> dict[str, Any]:
    """Every field of ``raw`` by name; ``closed`` refuses keys the table does not declare."""
    expect(raw, dict, section)
    if closed:
        unknown_keys(raw, {f.name for f in fields}, section)
    return {f.name: read_field(raw, f, section, context) for f in fields}


#: Bucket and retention names end up in lock files, URLs, Slack messages and command lines
#: (``--bucket NAME``), so a name starts with a letter or digit: ``--execute`` is an option.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def check_name(name: str, section: str) -> None:
    if not NAME_PATTERN.fullmatch(name):
        raise ConfigError(
            f"{section}.{key_name(name)}: a name is 1 to 64 letters, digits, '_' or '-', "
            "starting with a letter or digit"
        )
