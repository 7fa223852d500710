"""Free text people type: reasons, notes, the words that go with a decision.

Every such text passes one check before it is stored, whichever shell it came from: the
command line refuses line breaks itself, the dashboard's text areas allow them, and a
library caller may send anything. A NUL character would otherwise reach PostgreSQL as a
driver error, a lone surrogate (bytes that were not UTF-8, or a JSON escape) fails to encode
in any database driver, and a megabyte of text would sit in the evidence.
"""

from __future__ import annotations

from compliance.errors import InvalidInput

#: The longest reason or note kept: a few paragraphs, far more than any form asks for.
MAX_FREE_TEXT = 4000
#: Layout a text area produces; every other control character is refused.
LAYOUT = frozenset("\t\n\r")


def not_utf8(text: str) -> bool:
    """Whether ``text`` holds lone surrogates: how Python hands over bytes that were not
    UTF-8 (a command line, an environment variable) or a JSON escape of half a character."""
    return any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def has_control(text: str, *, allowed: frozenset[str] = frozenset()) -> bool:
    """Whether ``text`` holds an ASCII control character other than those ``allowed``."""
    return any((ord(c) < 32 or ord(c) == 127) and c not in allowed for c in text)


def check_characters(text: str, field: str, *, allowed: frozenset[str] = frozenset()) -> None:
    """InvalidInput naming ``field`` if ``text`` holds a control character (but ``allowed``)
    or a lone surrogate: what no database stores as text and no terminal should receive."""
    if not_utf8(text):
        raise InvalidInput("{field} is not valid UTF-8 text", field=field)
    if has_control(text, allowed=allowed):
        raise InvalidInput("{field} holds a control character", field=field)


def free_text(value: str | None, *, field: str) -> str | None:
    """The text trimmed, or None when it is blank; InvalidInput naming ``field`` otherwise.

    Whether a blank text is allowed is the caller's rule ("rejecting needs a reason"), so it
    is worded there, in its domain's words.
    """
    text = (value or "").strip()
    if len(text) > MAX_FREE_TEXT:
        raise InvalidInput(
            f"{{field}} is longer than {MAX_FREE_TEXT} characters ({len(text)})", field=field
        )
    check_characters(text, field, allowed=LAYOUT)
    return text or None
