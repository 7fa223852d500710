"""Email addresses: what reviewers, requesters and subjects are named by everywhere."""

from __future__ import annotations

import re

from compliance.errors import InvalidInput

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def check_email(value: str, field: str) -> str:
    """The address, trimmed and lower-cased, or InvalidInput naming ``field`` (``"reviewer"``)."""
    value = (value or "").strip()
    if not EMAIL.match(value):
        raise InvalidInput(f"{{field}} must be an email address, got '{value}'", field=field)
    return value.lower()
