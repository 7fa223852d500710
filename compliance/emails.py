"""Email addresses: what reviewers, requesters and subjects are named by everywhere."""

from __future__ import annotations

import re

from compliance.errors import InvalidInput
from compliance.free_text import check_characters

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# The longest address SMTP carries (RFC 5321's path limit less its angle brackets).
MAX_EMAIL_LENGTH = 254


def check_email(value: str, field: str) -> str:
    """The address, trimmed and lower-cased, or InvalidInput naming ``field`` (``"reviewer"``).

    Length and control characters are refused before the address is quoted back, so the
    error stays one short, printable line whatever was typed.
    """
    value = (value or "").strip()
    if len(value) > MAX_EMAIL_LENGTH:
        raise InvalidInput(
            f"{{field}} is longer than {MAX_EMAIL_LENGTH} characters ({len(value)})", field=field
        )
    check_characters(value, field)
    if not EMAIL.match(value):
        raise InvalidInput(f"{{field}} must be an email address, got '{value}'", field=field)
    return value.lower()
