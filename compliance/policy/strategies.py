"""Anonymize strategies, looked up by the name used in the policy file.

Adding a strategy is adding a class here. Every strategy is idempotent: applying it
to a value it already produced returns that value unchanged, so a rerun of an
interrupted ``apply-deletions`` changes nothing twice.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import LargeBinary, Text, case, cast, func, literal

from compliance.errors import ConfigError, quoted, unprintable
from compliance.store import hashing
from compliance.store.hashing import DEMO_HASH_KEY


@dataclass(frozen=True)
class Writes:
    """What a strategy puts in a column, for the load-time check against the column's type."""

    #: NULL into every row (the column must allow it).
    null: bool = False
    #: The characters written at most (text strategies); None for NULL.
    length: int | None = None
    #: The one text written into every row, when it is a constant (so a UNIQUE column refuses it).
    constant: str | None = None
    #: What it writes, in the words README and the errors use.
    words: str = ""


def characters(count: int | None) -> str:
    return "1 character" if count == 1 else f"{count} characters"


class AnonymizeStrategy:
    name: ClassVar[str]
    #: When True the new value depends on the old one; otherwise it is a constant.
    needs_value: ClassVar[bool] = False
    #: When True the strategy needs the secret key (``get_strategy(name, key)``).
    keyed: ClassVar[bool] = False
    #: Keys the policy may give beside ``strategy`` (``{ strategy = "redact", text = "-" }``).
    options: ClassVar[tuple[str, ...]] = ()

    def constant(self) -> Any:
        raise NotImplementedError

    def writes(self) -> Writes:
        raise NotImplementedError

    def transform(self, value: Any) -> Any:
        return self.constant()

    def sql(self, column: Any, dialect: str) -> Any | None:
        """The new value as a SQL expression, so one UPDATE anonymizes a whole chunk.

        None when this database cannot compute it; the engine then transforms in Python.
        """
        if self.needs_value:
            return None
        return literal(self.constant(), column.type)


class NullStrategy(AnonymizeStrategy):
    name = "null"

    def constant(self) -> Any:
        return None

    def writes(self) -> Writes:
        return Writes(null=True, words="NULL")


#: The longest text ``redact`` may write: a marker, not a value.
MAX_REDACT_TEXT = 255


class RedactStrategy(AnonymizeStrategy):
    name = "redact"
    MARK = "[REDACTED]"
    options = ("text",)

    def __init__(self, text: str = MARK) -> None:
        self.text = text

    def constant(self) -> Any:
        return self.text

    def writes(self) -> Writes:
        return Writes(
            length=len(self.text),
            constant=self.text,
            words=f"{quoted(self.text)} ({characters(len(self.text))})",
        )


#: Environment variable holding the hash strategy's secret key (never the policy file).
HASH_KEY_ENV = "COMPLIANCE_HASH_KEY"
#: The longest environment value read (64 KiB): no URL, secret or path needs more.
MAX_ENV_BYTES = 64 * 1024
MIN_KEY_LENGTH = 32


def hash_secret(*, demo_mode: bool, env: Mapping[str, str] | None = None) -> bytes:
    """The secret key of the ``hash`` strategy, from ``COMPLIANCE_HASH_KEY``.

    Without a key, anyone who guesses an address could recompute its hash and re-identify
    the "anonymized" row; so outside demo mode a missing or short key is refused.
    """
    env = os.environ if env is None else env
    value = env.get(HASH_KEY_ENV, "")
    if value:
        # 40 spaces, or one character repeated, has the length of a secret and none of it.
        if len(value.strip()) < MIN_KEY_LENGTH or len(set(value)) < 8:
            raise ConfigError(
                f"{HASH_KEY_ENV} is too short or not random ({len(value.strip())} characters "
                f"besides spaces, {len(set(value))} different); use at least {MIN_KEY_LENGTH} "
                "random characters (e.g. openssl rand -hex 32)"
            )
        if len(value) > MAX_ENV_BYTES or not value.isprintable():
            raise ConfigError(
                f"{HASH_KEY_ENV} must be printable text of at most {MAX_ENV_BYTES} characters"
            )
        return value.encode("utf-8", "surrogateescape")
    if demo_mode:
        return DEMO_HASH_KEY
    raise ConfigError(
        f"{HASH_KEY_ENV} is not set; the 'hash' anonymize strategy needs a secret key "
        "(e.g. openssl rand -hex 32) so anonymized values cannot be recomputed from a guess"
    )


class HashStrategy(AnonymizeStrategy):
    """HMAC-SHA256 with a secret key: values stay distinct (unique constraints, joins for
    statistics) but cannot be recomputed by someone who guesses the original."""

    name = "hash"
    keyed = True
    PREFIX = hashing.PREFIX
    DIGITS = hashing.DIGITS
    needs_value = True

    def __init__(self, key: bytes = DEMO_HASH_KEY) -> None:
        self.key = key

    def writes(self) -> Writes:
        # NULL stays NULL, so a NOT NULL column is no obstacle.
        length = len(self.PREFIX) + self.DIGITS
        return Writes(length=length, words=f"{length} characters ('{self.PREFIX}' and hex digits)")

    def transform(self, value: Any) -> Any:
        return hashing.keyed_hash(self.key, value)

    def sql(self, column: Any, dialect: str) -> Any | None:
        if dialect == "sqlite":
            # Registered on every SQLite connection (compliance/store/engines.py).
            return func.pd_anon_hash(column, literal(self.key.hex()))
        if dialect != "postgresql":
            return None
        # HMAC from PostgreSQL's own sha256() (no pgcrypto): H(K^opad || H(K^ipad || m)).
        block = self.key if len(self.key) <= 64 else hashlib.sha256(self.key).digest()
        block = block.ljust(64, b"\0")
        ipad = bytes(b ^ 0x36 for b in block)
        opad = bytes(b ^ 0x5C for b in block)
        message = func.convert_to(cast(column, Text), "UTF8")
        inner = func.sha256(literal(ipad, LargeBinary).op("||", return_type=LargeBinary)(message))
        outer = func.sha256(literal(opad, LargeBinary).op("||", return_type=LargeBinary)(inner))
        digest = func.left(func.encode(outer, "hex"), self.DIGITS)
        already = cast(column, Text).op("~")(f"^{self.PREFIX}[0-9a-f]{{{self.DIGITS}}}$")
        return case((already, column), else_=literal(self.PREFIX) + digest)


STRATEGIES: dict[str, AnonymizeStrategy] = {
    cls.name: cls() for cls in (NullStrategy, RedactStrategy, HashStrategy)
}


class ErasureAction(StrEnum):
    """What erasing a subject does to a mapped table's rows (``on_erasure``); how each is
    carried out is ``compliance.deletion.erase``'s."""

    DELETE = "delete"
    ANONYMIZE = "anonymize"
    RETAIN = "retain"


ERASURE_ACTIONS = tuple(action.value for action in ErasureAction)


def get_strategy(
    name: str, key: bytes | None = None, options: Mapping[str, Any] | None = None
) -> AnonymizeStrategy:
    """The named strategy; a keyed one (``hash``) bound to ``key``, any other to its options."""
    strategy = STRATEGIES[name]
    if strategy.keyed:
        if key is None:
            raise ConfigError(f"the '{name}' anonymize strategy needs {HASH_KEY_ENV}")
        return HashStrategy(key)
    return type(strategy)(**options) if options else strategy


def strategy_options(name: str, raw: Mapping[str, Any], key: str) -> dict[str, str]:
    """The options a policy gives a strategy beside its name, checked (``key`` names them)."""
    allowed = ("strategy", *STRATEGIES[name].options)
    for option, value in raw.items():
        if option not in allowed:
            raise ConfigError(
                f"{key}.{option}: unknown key for strategy '{name}' (allowed: {', '.join(allowed)})"
            )
        if option == "text":
            if not isinstance(value, str):
                raise ConfigError(f"{key}.text: expected str, got {value!r}")
            if any(map(unprintable, value)) or len(value) > MAX_REDACT_TEXT:
                raise ConfigError(
                    f"{key}.text: {quoted(value)} must be one line of at most {MAX_REDACT_TEXT} "
                    "characters"
                )
    return {k: v for k, v in raw.items() if k != "strategy"}
