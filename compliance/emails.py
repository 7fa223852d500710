"""Email addresses: what reviewers, requesters and subjects are named by everywhere."""

from __future__ import annotations

import re

from compliance.errors import InvalidInput, quoted, unprintable
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


# What a list, a display name, a group or a comment needs; a plain address has none of it.
_NOT_ONE_MAILBOX = re.compile(r'[\s,;:<>()"\[\]\\]')
# RFC 5322's dot-atom local part and a dotted domain, letters of any script allowed (RFC 6531:
# the demo's subjects are björn.zieliński@…); nothing that quotes, comments or lists.
_ATEXT = r"[\w!#$%&'*+/=?^`{|}~-]+"
_LABEL = r"(?!-)[^\W_](?:[\w-]*[^\W_])?"
_MAILBOX = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*@{_LABEL}(?:\.{_LABEL})+")


def check_mailbox(value: object, field: str) -> str:
    """``value`` as exactly one plain mailbox (``local@domain``), or InvalidInput naming ``field``.

    Every address the desk mails passes here: ``users.email`` may hold a list
    (``'victim@example.org, attacker@evil.example'``), a display name hiding another
    address, a group or a line break that would start a new header; each would send a
    subject's link and code somewhere else, so each is refused rather than repaired.
    """
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        raise InvalidInput("{field} is empty: there is no email address to send to", field=field)
    if len(text) > MAX_EMAIL_LENGTH:
        raise InvalidInput(
            f"{{field}} is longer than {MAX_EMAIL_LENGTH} characters ({len(text)})", field=field
        )
    if any(unprintable(c) for c in text):
        raise InvalidInput(
            f"{{field}} holds a line break or control character, got {quoted(text)}", field=field
        )
    if _NOT_ONE_MAILBOX.search(text) or text.count("@") > 1:
        raise InvalidInput(
            "{field} must be exactly one email address (no lists, display names or groups), "
            f"got {quoted(text)}",
            field=field,
        )
    if not _MAILBOX.fullmatch(text):
        raise InvalidInput(f"{{field}} is not an email address, got {quoted(text)}", field=field)
    return text
