"""Parameter types that answer every value at the click layer, before any database is opened.

A number beyond 64 bits or a date in the year 9999 used to reach SQLite or ``datetime`` and
end in a traceback. These types refuse such values with one line naming the option and the
allowed range (``PrivacyDeskGroup`` prints it as ``Error: …`` and exits 2).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

import click

from compliance.errors import quoted, unprintable
from compliance.free_text import has_control
from compliance.policy.sections import MAX_DAYS
from compliance.urls import url_problem

#: The largest id a database row can have (PostgreSQL BIGINT, SQLite INTEGER).
MAX_ID = 2**63 - 1
FIRST_DAY = date(1970, 1, 1)
LAST_DAY = date(2999, 12, 31)
MAX_TEXT = 255
_WHOLE = re.compile(r"[+-]?[0-9]+")


def _name(param: click.Parameter | None) -> str:
    if param is None:
        return "the value"
    if isinstance(param, click.Option) and param.opts:
        return max(param.opts, key=len)
    return param.human_readable_name


class Whole(click.ParamType):
    """A whole number from ``low`` to ``high``; refused in one line naming the option."""

    name = "integer"

    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            text = str(value).strip()
            if not _WHOLE.fullmatch(text) or len(text) > 40:
                raise click.UsageError(
                    f"{_name(param)} must be a whole number, got {quoted(value)}", ctx
                )
            number = int(text)
        if not self.low <= number <= self.high:
            raise click.UsageError(
                f"{_name(param)} must be from {self.low} to {self.high}, got {value}", ctx
            )
        return number


def whole(low: int, high: int) -> Whole:
    return Whole(low, high)


ROW_ID = Whole(1, MAX_ID)
DAYS = Whole(0, MAX_DAYS)


class Day(click.ParamType):
    """A calendar day ``YYYY-MM-DD`` from 1970 to 2999, as a datetime at midnight."""

    name = "YYYY-MM-DD"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            moment = value
        else:
            try:
                moment = datetime.strptime(str(value).strip(), "%Y-%m-%d")
            except ValueError:
                raise click.UsageError(
                    f"{_name(param)} must be a date YYYY-MM-DD, got {quoted(value)}", ctx
                ) from None
        if not FIRST_DAY <= moment.date() <= LAST_DAY:
            raise click.UsageError(
                f"{_name(param)} must be a date from {FIRST_DAY} to {LAST_DAY}, "
                f"got {quoted(value)}",
                ctx,
            )
        return moment


DAY = Day()


class Text(click.ParamType):
    """One line of text, trimmed, not empty, at most ``limit`` characters."""

    name = "text"

    def __init__(self, limit: int = MAX_TEXT) -> None:
        self.limit = limit

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).strip()
        if not text:
            raise click.UsageError(f"{_name(param)} is empty", ctx)
        if len(text) > self.limit:
            raise click.UsageError(
                f"{_name(param)} is longer than {self.limit} characters ({len(text)})", ctx
            )
        if has_control(text):
            raise click.UsageError(f"{_name(param)} holds a control character", ctx)
        return text


#: A subject key: trimmed here; the library compares it as the key column's type.
SUBJECT_ID = Text(MAX_TEXT)
#: Bucket names are at most 64 characters (compliance.policy.fields.NAME_PATTERN).
BUCKET = Text(64)
#: A kind of data subject's name ([subjects.NAME]); the policy says which exist.
SUBJECT_TYPE = Text(64)
#: The --subject-type option every command naming one subject shares.
subject_type_option = click.option(
    "--subject-type",
    type=SUBJECT_TYPE,
    metavar="NAME",
    help="The kind of data subject ([subjects.NAME]); needed where the policy declares several.",
)


class HttpUrl(click.ParamType):
    """An absolute http(s) URL with a host: it is mailed to a subject with a token appended."""

    name = "URL"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).strip()
        problem = url_problem(text)
        if problem:
            raise click.UsageError(f"{_name(param)} {problem}, got {quoted(value)}", ctx)
        return text


HTTP_URL = HttpUrl()


def _download_url() -> str:
    from compliance.dsar.delivery import download_url_setting  # read when asked, not on import

    return download_url_setting()


#: Where the data subject's download page is served: the links emailed point there.
download_url_option = click.option(
    "--download-url",
    type=HTTP_URL,
    default=_download_url,
    show_default="$COMPLIANCE_DOWNLOAD_URL or http://localhost:8503",
    help="Where the data subject's download page (dashboard/download.py) is served: an "
    "absolute http(s) URL with a host.",
)


class Folder(click.ParamType):
    """A folder to write into: not blank, no control, line-separator or bidi character, which
    would create a folder nobody can see or type (``''`` once meant the current one)."""

    name = "DIR"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if not text.strip():
            raise click.UsageError(f"{_name(param)} is empty", ctx)
        if text != text.strip() or any(unprintable(c) for c in text):
            raise click.UsageError(
                f"{_name(param)} holds a control, bidi or surrounding space character, "
                f"got {quoted(value)}",
                ctx,
            )
        return text


FOLDER = Folder()
