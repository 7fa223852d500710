"""What a person reads on the officer's and manager's pages: no "None", nothing said twice,
and a demo user switched on a page they may not open lands on their own (both DBs)."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from compliance.deletion.exclusions import exclude_records
from compliance.deletion.holds import lift_hold, place_hold, plan_lift_hold, plan_place_hold
from compliance.store.models import DeletionRecord
from tests.conftest import DPO, Deployment
from tests.dashboard.conftest import (
    MANAGER,
    OFFICER,
    SUPPORT,
    OpenApp,
    demo_picker_offered,
    pending_batch,
    texts,
)

#: Known and left: Progress's system backlog keeps its oldest waiting age a number (the
#: System tasks tests read it as one), so a system with nothing waiting shows a gap there.
NUMBERS_WITH_GAPS = {"oldest_waiting_days"}


def unreadable_cells(at: AppTest) -> list[str]:
    """Every cell of every displayed frame that a grid would draw as "None" or "NaN"."""
    found: list[str] = []
    for i, element in enumerate(at.dataframe):
        frame: pd.DataFrame = element.value
        for column in frame.columns:
            if column in NUMBERS_WITH_GAPS:
                continue
            for row, value in enumerate(frame[column]):
                missing = value is None or (not isinstance(value, str) and pd.isna(value))
                if missing or (isinstance(value, str) and value.strip() in ("None", "nan", "NaT")):
                    found.append(f"table {i} row {row} {column}: {value!r}")
    return found


def loose_ends(d: Deployment) -> int:
    """An exclusion with a note, a lifted hold, a refused job run; returns the batch."""
    batch_id = pending_batch(d)
    with d.session() as s:
        first = s.scalars(
            select(DeletionRecord.id).where(DeletionRecord.deletion_batch_id == batch_id)
        ).first()
        assert first is not None
        exclude_records(s, batch_id, {first: "Customer disputes an invoice"}, actor=DPO)
        hold = place_hold(s, plan_place_hold(s, subject_id="42", reason="Litigation", by=DPO))
        lift_hold(s, plan_lift_hold(s, hold.id, reason="Case settled", by=DPO))
    assert d.run("review-batch", "999999", "--accept", "--reviewer", OFFICER).exit_code == 2
    return batch_id


def test_no_table_on_the_officers_pages_shows_none(queue: Deployment, open_app: OpenApp) -> None:
    batch_id = loose_ends(queue)
    problems: list[str] = []
    at = open_app(OFFICER)
    at.selectbox(key="bucket_filter").set_value("closed_accounts").run()
    at.selectbox(key="status_filter").set_value("all").run()
    at.selectbox(key="open_batch").set_value(batch_id).run()
    problems += [f"batches: {p}" for p in unreadable_cells(at)]
    at.switch_page("views/holds.py").run()
    at.toggle(key="holds_all").set_value(True).run()
    problems += [f"holds: {p}" for p in unreadable_cells(at)]
    for page in (
        "views/audit.py",
        "views/job_runs.py",
        "views/progress.py",
        "views/dsar.py",
        "views/tasks.py",
    ):
        at.switch_page(page).run()
        assert not at.exception, at.exception
        problems += [f"{page}: {p}" for p in unreadable_cells(at)]
    assert not problems, "\n".join(problems)


def test_a_rule_the_policy_describes_is_said_once(queue: Deployment, open_app: OpenApp) -> None:
    at = open_app(OFFICER)
    at.selectbox(key="bucket_filter").set_value("closed_accounts").run()
    (said,) = [c.value for c in at.caption if "Read live, never stored" in c.value]
    assert said.count("Not anonymized yet") == 1


def test_a_lifted_hold_shows_who_lifted_it_and_why(queue: Deployment, open_app: OpenApp) -> None:
    loose_ends(queue)
    at = open_app(OFFICER, "views/holds.py")
    at.toggle(key="holds_all").set_value(True).run()
    listed = at.dataframe[0].value.set_index("id")
    (hold,) = listed.index
    assert listed.loc[hold, "lifted_by"] == OFFICER
    assert "Select a row to read its reason, lifted reason." in [c.value for c in at.caption]


def test_switching_demo_user_on_a_page_they_may_not_open_lands_on_their_own(
    queue: Deployment, open_app: OpenApp
) -> None:
    if not demo_picker_offered(queue):
        pytest.skip("the demo picker runs on the demo's SQLite only (roles.demo_refusal)")
    at = open_app(OFFICER, "views/holds.py")
    assert texts(at, "title") == ["Legal holds"]
    at.selectbox(key="demo_user").select(SUPPORT).run()
    assert not at.exception, at.exception
    assert texts(at, "title") == ["DSAR requests"]

    at = open_app(OFFICER, "views/batches.py")
    at.selectbox(key="demo_user").select(MANAGER).run()
    assert texts(at, "title") == ["Progress"]

    # A page the new user may open stays open.
    at = open_app(OFFICER, "views/audit.py")
    at.selectbox(key="demo_user").select(MANAGER).run()
    assert texts(at, "title") == ["Audit log"]
