"""The DSAR page's "Decide several requests at once": the identity evidence an approver relies
on, and which of the chosen requests each decision would skip, by the library's own rules
(``compliance.dsar.desk.review_candidates``: four eyes, and Art. 21(3) for objections to
direct marketing), so the dialog offers only what the review will do.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from compliance.dsar.desk import ReviewCandidate
from dashboard import widgets

COLUMNS = ["reference", "kind", "identity_method", "identity_note", "approval", "rejection"]


def show_candidates(candidates: list[ReviewCandidate]) -> None:
    """One row per pending request: how identity was checked, and why a decision skips it."""
    rows = [
        {
            "reference": c.reference,
            "kind": c.kind,
            "identity_method": (c.identity_method or "not recorded").replace("_", " "),
            "identity_note": c.identity_note or "",
            "approval": "" if c.may_approve else "you logged it: another officer",
            "rejection": "" if c.may_reject else "never refused (Art. 21(3))",
        }
        for c in candidates
    ]
    widgets.table(
        pd.DataFrame(rows, columns=COLUMNS),
        widths={"identity_note": "large", "approval": "medium", "rejection": "medium"},
    )


def say_what_is_skipped(several: list[str], approvable: list[str], rejectable: list[str]) -> None:
    """Of the chosen requests, those approving or rejecting would leave out, and why."""
    yours = [r for r in several if r not in approvable]
    if yours:
        st.caption(
            f"You logged {len(yours)} of these; approving skips them (four eyes), "
            "rejecting includes them."
        )
    absolute = [r for r in several if r not in rejectable]
    if absolute:
        st.caption(
            f"{len(absolute)} of these object to direct marketing, which is never refused "
            "(Art. 21(3)): rejecting skips them."
        )
