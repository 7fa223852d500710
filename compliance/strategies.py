"""Anonymize strategies, looked up by the name used in the policy file.

Adding a strategy is adding a class here. Every strategy is idempotent: applying it
to a value it already produced returns that value unchanged, so a rerun of an
interrupted ``apply-deletions`` changes nothing twice.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar


class AnonymizeStrategy:
    name: ClassVar[str]
    #: When True the strategy needs each row's current value (computed in Python);
    #: otherwise one UPDATE sets a constant for the whole chunk.
    needs_value: ClassVar[bool] = False

    def constant(self) -> Any:
        raise NotImplementedError

    def transform(self, value: Any) -> Any:
        return self.constant()


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
