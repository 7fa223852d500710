"""Subject keys after erasure: kept only as a keyed hash, still matched by the live key.

A key such as ``ANATR`` (Ana Trujillo) is itself personal data. Once a subject's erasure
request completed (and nothing of theirs is open or on hold), the compliance database keeps
their key only as HMAC-SHA256 under ``COMPLIANCE_HASH_KEY``: in their compliance profile,
requests, free-text ties and job runs (compliance.dsar.forget.hash_erased_keys). What must
still recognise them computes the same hash of a live key and matches either form: the
rejection cool-off (a subject rejected in a bucket is still held back) and replay-erasures
(a restored subject is erased again). Nobody without the key can tell whose hash it is.

The hash is the ``hash`` anonymize strategy's over ``subject-key:`` and the key, so it has
that strategy's SQL twin on SQLite and PostgreSQL, and reads ``anon-`` and 40 hex digits.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, String, cast, literal

from compliance.errors import ConfigError
from compliance.policy.model import Policy
from compliance.policy.strategies import HashStrategy, hash_secret

#: What is hashed is this and the key: a key's hash never equals a column's anonymized value.
DOMAIN = "subject-key:"
#: Every hashed key starts with this (a stored key that does too is never hashed again).
HASHED_PREFIX = HashStrategy.PREFIX


def key_secret(policy: Policy) -> bytes | None:
    """The key to hash subject keys with, or None when there is none (nothing was hashed)."""
    try:
        return hash_secret(demo_mode=policy.dashboard.demo_mode)
    except ConfigError:
        return None


def hashed_key(key: str, secret: bytes) -> str:
    """What the compliance database keeps of ``key`` once the subject's erasure completed."""
    return str(HashStrategy(secret).transform(DOMAIN + str(key)))


def hashed_key_sql(key: Any, secret: bytes, dialect: str) -> ColumnElement[Any]:
    """``hashed_key`` as a SQL expression over the key column or value ``key``."""
    message = literal(DOMAIN, String) + cast(key, String)
    expression = HashStrategy(secret).sql(message, dialect)
    assert expression is not None, f"no SQL hash on {dialect}"
    return expression


def key_forms(keys: Iterable[str], secret: bytes | None) -> dict[str, str]:
    """Each stored form of ``keys`` (as typed, and hashed when there is a secret) -> the key."""
    forms = {str(k): str(k) for k in keys}
    if secret is not None:
        forms.update({hashed_key(k, secret): k for k in list(forms)})
    return forms


def either_form(column: Any, key: Any, secret: bytes | None, dialect: str) -> ColumnElement[bool]:
    """``column`` holds the key ``key`` (a SQL expression) as typed or hashed."""
    if secret is None:
        return column == key
    return column.in_([key, hashed_key_sql(key, secret, dialect)])
