"""Every CSV the project writes goes through here, so no cell can run as a spreadsheet formula.

Names, reasons and notes are typed by people (or by a data subject into the product). A cell
such as ``=HYPERLINK("http://evil","Click")`` would become a live formula in the officer's
spreadsheet. The OWASP rule, widened: a text cell starting with ``= + - @`` or their
fullwidth forms ``＝ ＋ － ＠`` (which some spreadsheets fold to ASCII), with a tab, a carriage
return or a line feed, or with spaces before any of those signs, gets a leading ``'``, which
spreadsheets show as text. JSON files are never touched: ``data.json`` stays faithful to
what the database holds.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas costs ~80 MB; only callers with frames need it
    import pandas as pd

SIGNS = ("=", "+", "-", "@", "\uff1d", "\uff0b", "\uff0d", "\uff20")
FORMULA_STARTS = (*SIGNS, "\t", "\r", "\n")


def neutralise(value: Any) -> Any:
    """The cell as a spreadsheet will read it safely; only text cells can be formulas."""
    if isinstance(value, str) and (
        value.startswith(FORMULA_STARTS)
        or (value[:1].isspace() and value.lstrip().startswith(SIGNS))
    ):
        return "'" + value
    return value


def rows_to_csv(header: Sequence[Any], rows: Iterable[Sequence[Any]]) -> bytes:
    """UTF-8 CSV with a header row, every text cell (header included) neutralised."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow([neutralise(str(name)) for name in header])
    for row in rows:
        writer.writerow(["" if cell is None else neutralise(cell) for cell in row])
    return buffer.getvalue().encode("utf-8")


def frame_to_csv(frame: pd.DataFrame) -> bytes:
    """A dashboard table as CSV, text cells neutralised, numbers and dates as pandas writes them."""
    from pandas.api.types import is_datetime64_any_dtype, is_numeric_dtype

    safe = frame.copy()
    for column in safe.columns:
        # Text columns are `object` or pandas' `str` dtype; numbers and dates cannot be formulas.
        if not (is_numeric_dtype(safe[column]) or is_datetime64_any_dtype(safe[column])):
            safe[column] = safe[column].map(neutralise)
    safe.columns = [neutralise(str(name)) for name in safe.columns]
    return safe.to_csv(index=False).encode("utf-8")
