"""One error family for the core; shells map it to an exit code or an ``st.error``."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

#: Where a message names its field; each shell puts its own name for the field there.
FIELD = "{field}"


#: Bidirectional overrides and isolates: they reorder what a reader sees around them.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def unprintable(c: str) -> bool:
    """A character that acts on a terminal or a reader instead of showing: a control (line
    breaks included), a line or paragraph separator, a lone surrogate (it fails to encode),
    a bidirectional override. Letters, marks, no-break spaces and joiners all show."""
    return unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") or c in _BIDI


def printable(text: str) -> str:
    """``text`` with every ``unprintable`` character written as its escape code: messages
    quote what people typed."""
    return "".join(repr(c)[1:-1] if unprintable(c) else c for c in text)


#: How much of a refused value an error quotes back: enough to recognise it.
MAX_QUOTED = 40


def quoted(value: object) -> str:
    """A refused value as an error quotes it: short, on one line, unable to act on a terminal.

    A long value is cut (saying how long it was); see ``printable`` for the rest.
    """
    text = str(value)
    shown = printable(text[:MAX_QUOTED])
    if len(text) > MAX_QUOTED:
        return f"'{shown}…' ({len(text)} characters)"
    return f"'{shown}'"


def field_words(field: str) -> str:
    """A field as the library itself names it: ``chunk_size`` → ``chunk size``."""
    return field.replace("_", " ")


#: The most characters of an error message kept in a column, a job run or an audit detail.
MAX_ERROR_LENGTH = 1000


def first_line(error: BaseException) -> str:
    """What went wrong in one line, as short as a stored error: a database driver's own
    message rather than SQLAlchemy's wrapping of it; the error's class when it says nothing."""
    orig = getattr(error, "orig", None)
    lines = str(orig if orig is not None else error).strip().splitlines()
    return stored_error(lines[0].strip() if lines else type(error).__name__)


def stored_error(message: str) -> str:
    """``message`` cut to what a column, job run or audit detail keeps."""
    return message[:MAX_ERROR_LENGTH]


class ComplianceError(Exception):
    """A problem the user can fix; the message is shown to them as is, on one line.

    ``field`` is the input at fault in the library's words (``"reason"``, ``"chunk_size"``),
    never a shell's: the command line shows it as its flag, the dashboard as its label
    (``render``). The message marks where the field's name goes with ``{field}``, before any
    quoted input; a message that does not mark it gets the name added in parentheses.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        # Names taken from user input may hold line breaks (any of str.splitlines's, NEL and
        # U+2028 included); the message must not.
        self.problem = printable(" ".join(str(message).splitlines()))
        self.field = field
        super().__init__(self.render(field_words, hint=False))

    def render(self, name: Callable[[str], str], *, hint: bool = True) -> str:
        """The message with the field named by ``name`` (a shell's flag or label for it).

        Only the first ``{field}`` is replaced, so quoted input after it stays as typed.
        """
        if self.field is None:
            return self.problem
        named = " ".join(name(self.field).split())
        if FIELD in self.problem:
            return self.problem.replace(FIELD, named, 1)
        return f"{self.problem} ({named})" if hint else self.problem


class ConfigError(ComplianceError):
    """The policy file or the environment is wrong."""


class NotFound(ComplianceError):
    """A bucket, batch, record or request that does not exist."""


class Conflict(ComplianceError):
    """The action clashes with the current state, e.g. a batch someone already reviewed."""


class InvalidInput(ComplianceError):
    """A value given by the user is malformed or out of range."""


class Outage(ComplianceError):
    """A service we depend on (the export bucket) does not answer: nothing is wrong with the
    input or the policy. Shown as said, on one line; a job stops with exit 1 (not 2) and a
    later run carries on where it stopped."""


class PermissionDenied(ComplianceError):
    """The acting person lacks the role ([roles] in the policy) this decision needs."""
