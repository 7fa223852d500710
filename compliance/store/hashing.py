"""The ``hash`` anonymize strategy's function: HMAC-SHA256 of a value's text, written as
``anon-`` and 40 hex digits.

It lives in the store because every SQLite connection registers it as ``pd_anon_hash``
(``engines.py``), so one UPDATE anonymizes a whole chunk exactly as Python would; the
strategy itself (``compliance.policy.strategies.HashStrategy``) and its PostgreSQL twin use
the same constants.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

PREFIX = "anon-"
DIGITS = 40
#: The demo's key: public, so hashes made with it protect nothing. Only demo mode uses it.
DEMO_HASH_KEY = b"privacy-desk demo key - public, protects nothing"


def is_hashed(text: str) -> bool:
    """Whether ``text`` already reads as a hash this function wrote (hashing is idempotent)."""
    digest = text[len(PREFIX) :]
    return (
        text.startswith(PREFIX)
        and len(digest) == DIGITS
        and all(c in "0123456789abcdef" for c in digest)
    )


def keyed_hash(key: bytes, value: Any) -> Any:
    """``value`` hashed under ``key``; NULL stays NULL and a hash is left as it is."""
    if value is None:
        return None
    text = str(value)
    if is_hashed(text):
        return text
    return PREFIX + hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()[:DIGITS]


def sqlite_anon_hash(value: Any, key_hex: str | None = None) -> Any:
    """``keyed_hash`` as SQLite's ``pd_anon_hash(value[, key_hex])``.

    With one argument it uses the demo key (the benchmark's raw-SQL comparison does).
    """
    return keyed_hash(bytes.fromhex(key_hex) if key_hex else DEMO_HASH_KEY, value)
