"""Free text people type: reasons, notes, the words that go with a decision.

Every such text passes one check before it is stored, whichever shell it came from: the
command line refuses line breaks itself, the dashboard's text areas allow them, and a
library caller may send anything. A NUL character would otherwise reach PostgreSQL as a
driver error, and a megabyte of text would sit in the evidence.
"""

from __future__ import annotations

from compliance.errors import InvalidInput

#: The longest reason or note kept: a few paragraphs, far more than any form asks for.
MAX_FREE_TEXT = 4000
#: Layout a text area produces; every other control character is refused.
_LAYOUT = frozenset("\t\n\r")


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
    if any((ord(c) < 32 or ord(c) == 127) and c not in _LAYOUT for c in text):
        raise InvalidInput("{field} holds a control character", field=field)
    return text or None
