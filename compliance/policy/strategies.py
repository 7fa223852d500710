"""Anonymize strategies, looked up by the name used in the policy file.

Adding a strategy is adding a class here. Every strategy is idempotent: applying it
to a value it already produced returns that value unchanged, so a rerun of an
interrupted ``apply-deletions`` changes nothing twice.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar

from sqlalchemy import Text, case, cast, func, literal


class AnonymizeStrategy:
    name: ClassVar[str]
    #: When True the new value depends on the old one; otherwise it is a constant.
    needs_value: ClassVar[bool] = False

    def constant(self) -> Any:
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


class RedactStrategy(AnonymizeStrategy):
    name = "redact"
    MARK = "[REDACTED]"

    def constant(self) -> Any:
        return self.MARK


class HashStrategy(AnonymizeStrategy):
    """Keeps values distinct (unique constraints, joins for statistics) but irreversible."""

    name = "hash"
    PREFIX = "anon-"
    DIGITS = 40

    def transform(self, value: Any) -> Any:
        if value is None:
            return None
        text = str(value)
        if self.is_hashed(text):
            return text
        return self.PREFIX + hashlib.sha256(text.encode("utf-8")).hexdigest()[: self.DIGITS]

    needs_value = True

    def sql(self, column: Any, dialect: str) -> Any | None:
        if dialect == "sqlite":
            return func.pd_anon_hash(column)  # registered on every SQLite connection (db.py)
        if dialect != "postgresql":
            return None
        digest = func.left(
            func.encode(func.sha256(func.convert_to(cast(column, Text), "UTF8")), "hex"),
            self.DIGITS,
        )
        already = cast(column, Text).op("~")(f"^{self.PREFIX}[0-9a-f]{{{self.DIGITS}}}$")
        return case((already, column), else_=literal(self.PREFIX) + digest)

    @classmethod
    def is_hashed(cls, text: str) -> bool:
        digest = text[len(cls.PREFIX) :]
        return (
            text.startswith(cls.PREFIX)
            and len(digest) == cls.DIGITS
            and all(c in "0123456789abcdef" for c in digest)
        )


STRATEGIES: dict[str, AnonymizeStrategy] = {
    cls.name: cls() for cls in (NullStrategy, RedactStrategy, HashStrategy)
}

ERASURE_ACTIONS = ("delete", "anonymize", "retain")


def get_strategy(name: str) -> AnonymizeStrategy:
    return STRATEGIES[name]


def anon_hash(value: Any) -> Any:
    """The hash strategy as a SQLite function (``pd_anon_hash``), identical to Python's."""
    return STRATEGIES["hash"].transform(value)
