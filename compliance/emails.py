"""Email addresses: what reviewers, requesters and subjects are named by everywhere."""

from __future__ import annotations

import re

from compliance.errors import InvalidInput

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def check_email(value: str, what: str) -> str:
    """The address, trimmed and lower-cased, or InvalidInput naming ``what``."""
    value = (value or "").strip()
    if not EMAIL.match(value):
        raise InvalidInput(f"{what} must be an email address, got '{value}'")
    return value.lower()
