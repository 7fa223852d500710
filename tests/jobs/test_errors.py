"""Library errors speak of fields; the command line names its flags, the dashboard its labels."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from sqlalchemy.exc import OperationalError

from compliance.errors import (
    MAX_ERROR_LENGTH,
    ComplianceError,
    InvalidInput,
    first_line,
    stored_error,
)
from dashboard import widgets
from jobs import cli

ROOT = Path(__file__).resolve().parents[2]
FLAG = re.compile(r"(?<![\w-])--[a-z]")
#: The one library message that names a command: the policy file's remedy, quoted whole.
COMMAND = "'python -m jobs init-db --demo'"


def test_a_missing_reason_names_the_flag_on_the_command_line_and_the_label_on_the_page() -> None:
    error = InvalidInput("extending a DSAR deadline needs a reason", field="reason")
    assert cli.error_text(error) == "extending a DSAR deadline needs a reason (--reason)"
    assert widgets.error_text(error) == "extending a DSAR deadline needs a reason (Reason)"
    assert str(error) == "extending a DSAR deadline needs a reason"  # logs and the API


def test_a_field_named_inside_the_message_is_named_there_and_input_is_left_alone() -> None:
    error = InvalidInput("{field} must be an email address, got '{field}\nx'", field="subject_id")
    assert cli.error_text(error) == "--subject-id must be an email address, got '{field} x'"
    assert widgets.error_text(error) == "Subject id must be an email address, got '{field} x'"
    assert str(error) == "subject id must be an email address, got '{field} x'"
    for breaker in "\r\x0b\x0c\x1c\x85\u2028\u2029":  # every break str.splitlines knows
        typed = InvalidInput(f"unknown bucket '0{breaker}0'")
        assert len(cli.error_text(typed).splitlines()) == 1, repr(breaker)
    plain = ComplianceError("no batch '{field}'")  # no field: the text as it is
    assert cli.error_text(plain) == widgets.error_text(plain) == "no batch '{field}'"


def test_a_quoted_value_shows_as_typed_but_cannot_act_on_a_terminal_or_a_reader() -> None:
    """Names and notes in any script come back as typed; controls, lone surrogates and
    bidirectional overrides come back as their codes, so the line reads as it is."""
    typed = (
        "Jos\u00e9\u00a0M\u00fcller \u0645\u200c\u0647 "  # no-break space, zero-width non-joiner
        "\U0001f469\u200d\U0001f4bb \u2026 \u00d7 \u2014"  # an emoji sequence, ellipsis, dashes
    )
    error = InvalidInput(f"unknown bucket '{typed}\x1b[2J\u202e\udcff\x00'")
    assert str(error) == f"unknown bucket '{typed}\\x1b[2J\\u202e\\udcff\\x00'"
    assert str(error).encode("utf-8")  # the API writes it as JSON, a terminal as UTF-8


def _raised_messages() -> list[tuple[Path, str]]:
    """Every string written into a ``raise`` in the library, f-strings' text parts included."""
    found = []
    for path in (ROOT / "compliance").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and node.exc is not None:
                for part in ast.walk(node.exc):
                    if isinstance(part, ast.Constant) and isinstance(part.value, str):
                        found.append((path, part.value))
    return found


def test_the_library_names_no_flag_and_every_field_it_names_has_a_flag_and_a_label() -> None:
    messages = _raised_messages()
    assert len(messages) > 100
    flagged = [(p.name, m) for p, m in messages if FLAG.search(m.replace(COMMAND, ""))]
    assert flagged == []
    sources = [p.read_text() for p in (ROOT / "compliance").rglob("*.py")]
    sources += [p.read_text() for p in (ROOT / "jobs").glob("*.py")]
    fields = {f for s in sources for f in re.findall(r'field="(\w+)"', s)}
    fields |= {f for s in sources for f in re.findall(r'check_email\(\w+, "(\w+)"\)', s)}
    assert {"reason", "chunk_size", "requested_by", "by", "reviewer"} <= fields
    # Staff notes, manual task confirmations and the System tasks age filter are typed on
    # the dashboard only.
    dashboard_only = {"note", "older_than_days"}
    assert fields - dashboard_only <= set(cli.FLAGS), fields - dashboard_only - set(cli.FLAGS)
    for field in fields:
        assert not widgets.field_label(field).startswith("-")


def test_a_stored_error_is_its_first_line_in_the_drivers_own_words_and_never_too_long() -> None:
    wrapped = OperationalError("SELECT 1", {}, Exception("disk I/O error\nDETAIL: more"))
    assert first_line(wrapped) == "disk I/O error"
    assert first_line(ValueError("  \n")) == "ValueError"
    assert first_line(RuntimeError("x" * 5000)) == "x" * MAX_ERROR_LENGTH
    assert stored_error("y" * 5000) == "y" * MAX_ERROR_LENGTH
