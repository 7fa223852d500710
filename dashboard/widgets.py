"""Shared widgets: role guard, status badges, flash messages, the confirmation dialog,
the server-side paged table and CSV downloads. Pages compose these; none holds SQL.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

import pandas as pd
import streamlit as st

from compliance.csv_files import frame_to_csv
from compliance.errors import ComplianceError
from compliance.free_text import MAX_FREE_TEXT
from compliance.policy.model import Policy
from compliance.reports.review_queue import Page
from compliance.roles import Identity
from compliance.store.states import BatchStatus, DsarStatus
from dashboard import context

STATUS_COLORS: dict[str, str] = {
    BatchStatus.PENDING: "orange",
    BatchStatus.ACCEPTED: "green",
    BatchStatus.REJECTED: "red",
    DsarStatus.APPROVED: "green",
    DsarStatus.PROCESSING: "blue",
    DsarStatus.READY: "violet",  # built, the subject not sent the link yet: still open
    DsarStatus.COMPLETED: "green",
    DsarStatus.FAILED: "red",
}
# Statuses that wait for a person (a review, or a retry).
NEEDS_SOMEONE = frozenset({BatchStatus.PENDING, DsarStatus.PENDING, DsarStatus.FAILED})
ALL = "all"
_FLASH = "flash"
_PENDING = "pending_confirmation"
_REASON = "confirm_reason"


# ---------------------------------------------------------------- plain text

_MARKUP = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation character
# Where GFM would still turn the plain text into a link (http://, www., name@host).
_AUTOLINK = re.compile(r"(?i)(\\:(?=\\/\\/)|\\@|\bwww(?=\\\.))")
_JOINER = "\u2060"  # WORD JOINER: invisible, breaks the autolink pattern


def plain(text: object) -> str:
    """``text`` as itself inside any Streamlit element that renders markdown.

    Reasons, notes, identity checks and error messages quoting what someone typed must not
    become links, images (which the browser would fetch), HTML or formatting: every ASCII
    punctuation character is backslash-escaped (CommonMark shows ``\\X`` as ``X``), which
    also stops ``:color[...]`` directives and ``$`` maths, and an invisible word joiner
    after ``://``'s colon, ``@`` and ``www`` stops the autolinks GFM adds to plain text.
    Where the exact characters matter (to copy a reason), use ``show_text`` instead.
    """
    escaped = _MARKUP.sub(r"\\\1", str(text))
    return _AUTOLINK.sub(lambda m: m.group(0) + _JOINER, escaped)


def show_text(label: str, text: str) -> None:
    """Text someone typed, under a label, with no markdown or HTML parsing at all."""
    st.caption(plain(label))
    st.text(text)


# ---------------------------------------------------------------- access


def require_role(*roles: str) -> Identity:
    """Stop the page for anyone without one of ``roles``: a page is reachable only by URL."""
    person = st.session_state.get(context.IDENTITY_KEY)
    if person is None or not person.has(*roles):
        no_access(person)
        st.stop()
    return person


def no_access(person: Identity | None) -> None:
    st.title("No access")
    who = f"**{plain(person.email)}**" if person else "You"
    st.error(
        f"{who} has no role in Privacy Desk for this page. Ask a compliance officer to add "
        "you to `[roles]` in the policy file."
    )


# ---------------------------------------------------------------- status


def status_color(status: str) -> str:
    return STATUS_COLORS.get(status, "gray")


def status_badge(status: str) -> None:
    st.badge(status, color=status_color(status))  # type: ignore[arg-type]


def text_width(texts: Iterable[str], *, least: int) -> int:
    """Pixels a grid column needs for its longest text (the grid's 14 px font averages under
    7 px a character, plus the cell's padding), and never less than ``least``."""
    longest = max((len(t) for t in texts), default=0)
    return max(least, 16 + 7 * longest)


def days_text(days_left: float) -> str:
    """Days left in words, from ``compliance.dsar.requests.days_left`` (one rule everywhere)."""
    days_left = int(days_left)  # a table column with closed requests holds floats
    if days_left < 0:
        return f"{-days_left} day(s) overdue"
    if days_left == 0:
        return "due today"
    return f"{days_left} day(s) left"


# ---------------------------------------------------------------- library errors

#: The library names an input by its field; the dashboard by the label its form shows.
#: Fields not listed here read as their column header would (``chunk_size`` → ``Chunk size``).
FIELD_LABELS: dict[str, str] = {
    "correct": "Corrections",
    "email": "Subject's email",
    "exclude": "Exclude records",
    "identity_note": "Identity check note",
    "days": "Extend by",
    "months": "Extend by",
    "reason": "Reason",
    "sample": "Rows sampled per table",
    "scope": "What the subject objects to",
    "subject_id": "Subject id",
    "subject_type": "Kind of data subject",
}


def subject_type_picker(policy: Policy, key: str, *, any_label: str | None = None) -> str | None:
    """The kind of data subject a form is about where the policy declares several (else None);
    ``any_label`` offers None too: an email looked up in every kind."""
    if not policy.multiple_subject_types:
        return None
    label, names = FIELD_LABELS["subject_type"], list(policy.subject_types)
    if any_label is None:
        return st.selectbox(label, names, index=None, placeholder="Choose a kind", key=key)
    chosen = st.selectbox(label, [any_label, *names], key=key)  # a name is never a phrase
    return None if chosen == any_label else chosen


def field_label(field: str) -> str:
    return FIELD_LABELS.get(field) or header(field)


def error_text(exc: ComplianceError) -> str:
    """A library error as the dashboard says it: its field named by the form's label."""
    return exc.render(field_label)


def show_error(exc: ComplianceError, *, warning: bool = False) -> None:
    """A library error on the page, as plain text (it may quote what someone typed)."""
    (st.warning if warning else st.error)(plain(error_text(exc)))


# ---------------------------------------------------------------- flash messages


def flash(kind: str, message: str) -> None:
    """Show ``message`` on the next run, after the rerun that follows a decision."""
    st.session_state[_FLASH] = (kind, message)


def show_flash() -> None:
    kind, message = st.session_state.pop(_FLASH, (None, None))
    # Messages quote library errors, which quote what someone typed: shown as plain text.
    if kind == "success":
        st.success(plain(message))
    elif kind == "error":
        st.error(plain(message))


def forget_inputs(*keys: str) -> None:
    """Empty a form once what was typed into it has been saved (not before: a refused
    submit keeps every input)."""
    for key in keys:
        st.session_state.pop(key, None)


def run_action(action: Callable[[], str]) -> None:
    """Call the library, report the outcome, clear the caches and rerun.

    A ComplianceError (a Conflict when someone else decided meanwhile) is shown in the
    dashboard's words (``error_text``); the library has changed nothing in that case.
    """
    try:
        flash("success", action())
    except ComplianceError as exc:
        flash("error", error_text(exc))
    st.session_state.pop(_PENDING, None)
    st.session_state.pop(_REASON, None)
    context.clear_caches()
    st.rerun()


# ---------------------------------------------------------------- confirmation dialog


def ask_confirmation(action: str, *, reason: str | None = None, **params: Any) -> None:
    """Open the confirmation dialog for ``action`` on this and later runs until answered.

    ``reason`` fills the dialog's reason box with what the person already typed elsewhere.
    """
    st.session_state[_PENDING] = {"action": action, **params}
    st.session_state.pop(_REASON, None)
    if reason:
        st.session_state[_REASON] = reason


def pending_confirmation(action: str) -> dict[str, Any] | None:
    pending = st.session_state.get(_PENDING)
    return pending if pending and pending["action"] == action else None


def _cancel() -> None:
    st.session_state.pop(_PENDING, None)
    st.session_state.pop(_REASON, None)


def confirm_dialog(
    title: str,
    message: str,
    *,
    confirm_label: str,
    on_confirm: Callable[[str | None], str],
    reason_label: str | None = None,
    reason_required: str | None = None,
    details: Callable[[], None] | None = None,
) -> None:
    """A modal asking to confirm; ``on_confirm(reason)`` returns the success message.

    With ``reason_required`` (the message to show), an empty reason is refused in the
    dialog and nothing is called. ``details`` draws more under the message (a preview).
    A refusal (empty reason, or the library's) is shown in the dialog, which stays open
    with what was typed and its Cancel button.
    """

    @st.dialog(title, on_dismiss=_cancel)
    def body() -> None:
        st.markdown(message)
        if details is not None:
            details()
        reason = (
            st.text_area(reason_label, key=_REASON, max_chars=MAX_FREE_TEXT)
            if reason_label
            else None
        )
        left, right = st.columns(2)
        confirmed = left.button(confirm_label, type="primary", key="confirm_yes")
        if right.button("Cancel", key="confirm_no"):
            _cancel()
            st.rerun()
        if not confirmed:
            return
        if reason_required and not (reason or "").strip():
            st.error(reason_required)
            return
        try:
            done = on_confirm(reason)
        except ComplianceError as exc:
            show_error(exc)  # nothing changed: the dialog stays, with the reason typed
            return
        run_action(lambda: done)

    body()


# ---------------------------------------------------------------- filters, paging, downloads


def unless_all(choice: str | None) -> str | None:
    """A filter's choice, or None for the "all" option."""
    return None if choice in (None, ALL) else choice


def load_page(key: str, size: int, loader: Callable[[int, int], Page]) -> Page:
    """Load the page the pager shows; past the end (after filtering), go to the last page."""
    number = int(st.session_state.get(key, 1) or 1)
    page = loader(size, (number - 1) * size)
    if page.frame.empty and page.total and number > page.pages:
        st.session_state[key] = page.pages
        page = loader(size, (page.pages - 1) * size)
    return page


def pager(key: str, page: Page) -> None:
    """Page number input and a caption saying which rows are shown."""
    if page.total == 0:
        st.caption("Nothing to show.")
        return
    first = page.offset + 1
    last = page.offset + len(page.frame)
    st.caption(f"Rows {first}–{last} of {page.total}")
    if page.pages > 1:
        st.number_input(
            f"Page (of {page.pages})", min_value=1, max_value=page.pages, step=1, key=key
        )


def csv_download(
    label: str, frame: pd.DataFrame | Callable[[], pd.DataFrame], file_name: str, key: str
) -> None:
    """A CSV download (formula cells neutralised); given a callable, data is read on click."""
    if callable(frame):
        load = frame
        data: bytes | Callable[[], bytes] = lambda: frame_to_csv(load())  # noqa: E731
    else:
        data = frame_to_csv(frame)
    st.download_button(
        label, data, file_name=file_name, mime="text/csv", key=key, icon=":material/download:"
    )


def preset_from_link(key: str, param: str, form: re.Pattern[str]) -> None:
    """Start a widget on what a link named (``?reference=…``) when it has that thing's form,
    whether or not it is among the options in view (a cached list may predate it): the page
    reads it from the database, and says plainly when there is no such thing."""
    wanted = st.query_params.get(param)
    if key not in st.session_state and wanted and form.fullmatch(wanted):
        st.session_state[key] = wanted


def preset_from_query(key: str, param: str, options: list) -> None:
    """Start a widget on the value a link named (``?bucket=…``), if it is one of its options."""
    wanted = st.query_params.get(param)
    if key not in st.session_state and wanted in options:
        st.session_state[key] = wanted


# Headers that a plain rewrite of the column name would get wrong or leave vague.
HEADERS = {
    "legal_basis": "Why kept (legal basis)",
    "age_days": "Age (days)",
    "days_left": "Days left",
    "duration_s": "Seconds",
    "dry_run": "Mode",
    "id": "ID",
}
# Free text can be long: give it a column of its own width and let the cell be read on hover,
# so a wide table never pushes its last columns out of view.
WIDE_TEXT = {"details", "note", "reviewed_reason", "legal_basis", "summary", "arguments", "error"}
# Short values (ids, counts, one-word states) in narrow columns, pixels sized for the header.
NARROW = {
    "id": 70, "batch_id": 80, "record_id": 90, "subject_id": 95, "kind": 80, "status": 95,
    "records": 80, "excluded": 80, "age_days": 90, "days_left": 85, "overdue": 80, "runs": 60,
    "health": 95, "rows": 70, "action": 95, "dry_run": 80, "duration_s": 80,
}  # fmt: skip


def header(name: str) -> str:
    """``reviewed_by`` → ``Reviewed by``, ``subject_id`` → ``Subject ID``."""
    if name in HEADERS:
        return HEADERS[name]
    text = name.replace("_", " ").strip()
    if text.endswith(" id"):
        text = text[:-3] + " ID"
    return text[:1].upper() + text[1:]


def labels(
    columns: Any, *, widths: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """Readable headers for a frame's snake_case columns (``reviewed_at`` → ``Reviewed (UTC)``)."""
    config: dict[str, Any] = {}
    widths = widths or {}
    headers = headers or {}
    for name in columns:
        text = str(name)
        if text.endswith("_rate"):
            config[text] = st.column_config.NumberColumn(
                headers.get(text, header(text)), format="percent", width=widths.get(text)
            )
            continue
        if text in headers:
            if text.endswith("_at"):
                config[text] = st.column_config.DatetimeColumn(
                    headers[text] + " (UTC)", format="YYYY-MM-DD", width=widths.get(text)
                )
            else:
                config[text] = st.column_config.Column(headers[text], width=widths.get(text))
            continue
        width = widths.get(text, "medium" if text in WIDE_TEXT else NARROW.get(text))
        if text == "due":
            config[text] = st.column_config.DatetimeColumn(
                "Due (UTC)", format="YYYY-MM-DD", width=width
            )
        elif text.endswith("_at"):
            config[text] = st.column_config.DatetimeColumn(
                header(text[:-3]) + " (UTC)", format="YYYY-MM-DD HH:mm", width=width
            )
        else:
            config[text] = st.column_config.Column(header(text), width=width)
    return config


def utc_times(frame: pd.DataFrame) -> pd.DataFrame:
    """``*_at`` columns as UTC datetimes: a column mixing None and datetimes is shown as text."""
    converted = {
        c: pd.to_datetime(frame[c], utc=True)
        for c in frame.columns
        if str(c).endswith("_at") and not frame.empty
    }
    return frame.assign(**converted) if converted else frame


def readable(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as a person reads it: UTC dates, and an empty cell where a value is missing.

    A grid shows a missing value as the word "None", which reads as data (a person named
    None, a note saying None): such cells hold "" instead. A time column with gaps becomes
    its text ("2026-12-06 22:51"), as the grid would have drawn it.
    """
    frame = utc_times(frame)
    filled: dict[str, pd.Series] = {}
    for name in frame.columns:
        column = frame[name]
        if not column.isna().any():
            continue
        if pd.api.types.is_datetime64_any_dtype(column):
            text = column.dt.strftime("%Y-%m-%d" if name == "due" else "%Y-%m-%d %H:%M")
            filled[str(name)] = text.where(column.notna(), "")
        elif str(name).endswith("_rate"):  # a percentage, or nothing
            filled[str(name)] = column.map(lambda v: "" if pd.isna(v) else f"{v:.0%}")
        elif pd.api.types.is_numeric_dtype(column):
            continue  # a figure stays a number (as text it would sort and compare as text)
        else:
            filled[str(name)] = column.astype(object).where(column.notna(), "")
    return frame.assign(**filled) if filled else frame


def table(
    frame: pd.DataFrame,
    *,
    widths: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> Any:
    """A dataframe with readable headers, UTC dates, no index and no "None" in empty cells:
    how every page shows tables."""
    shown = readable(frame)
    typed = utc_times(frame)
    config = labels(frame.columns, widths=widths, headers=headers)
    for name in shown.columns:
        text = str(name)
        if shown[name].dtype == object and typed[name].dtype != object:
            if text.endswith("_rate") or not (text.endswith("_at") or text == "due"):
                title = (headers or {}).get(text, header(text))
                config[text] = st.column_config.TextColumn(title, width=(widths or {}).get(text))
                continue
            # A time column with gaps, now its text.
            title = "Due" if text == "due" else (headers or {}).get(text, header(text[:-3]))
            config[text] = st.column_config.TextColumn(
                f"{title} (UTC)", width=(widths or {}).get(text)
            )
    return st.dataframe(shown, hide_index=True, width="stretch", column_config=config, **kwargs)


def table_with_details(
    frame: pd.DataFrame,
    details: list[str],
    *,
    key: str,
    title: Callable[[pd.Series], str],
    widths: dict[str, Any] | None = None,
    **kwargs: Any,
) -> None:
    """A table whose long free-text columns (JSON, errors) are read below it, whole.

    No column width fits a JSON document or an error message, and a cell cut off mid-word
    reads as something else: those columns leave the grid, and selecting a row shows them
    under ``title(row)``.
    """
    shown = frame.drop(columns=[c for c in details if c in frame.columns])
    picked = table(
        shown, widths=widths, on_select="rerun", selection_mode="single-row", key=key, **kwargs
    )
    rows = list(picked.selection.rows) if picked else []
    if not rows or rows[0] >= len(frame):
        st.caption(f"Select a row to read its {', '.join(header(c).lower() for c in details)}.")
        return
    row = frame.iloc[rows[0]]
    st.markdown(f"**{plain(title(row))}**")
    for column in details:
        value = row.get(column)
        if value is None or (isinstance(value, float) and pd.isna(value)) or value == "":
            st.caption(f"{header(column)}: none")
            continue
        st.caption(header(column))
        try:
            st.json(json.loads(value) if isinstance(value, str) else value, expanded=True)
        except ValueError:
            st.text(str(value))
