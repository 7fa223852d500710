"""An accepted batch's page shows the plan the officer accepted, and held subjects are marked."""

from __future__ import annotations

from compliance.deletion.holds import place_hold, plan_place_hold
from compliance.deletion.review import review_batch
from compliance.reports.review_queue import batch_records
from compliance.roles import identify
from tests.conftest import Deployment
from tests.dashboard.conftest import OFFICER, OpenApp, pending_batch


def test_an_accepted_batch_shows_its_plan_and_its_held_subjects(
    queue: Deployment, open_app: OpenApp
) -> None:
    batch_id = pending_batch(queue)
    with queue.session() as s:
        subject = str(batch_records(s, batch_id).frame["subject_id"].iloc[0])
        officer = identify(queue.policy(), OFFICER)
        place_hold(s, plan_place_hold(s, subject_id=subject, reason="dispute", by=officer))
        review_batch(s, batch_id, "accept", reviewer=officer, policy=queue.policy(), execute=True)

    at = open_app(OFFICER)
    at.selectbox(key="bucket_filter").set_value("closed_accounts").run()
    at.selectbox(key="status_filter").set_value("accepted").run()
    at.selectbox(key="open_batch").set_value(batch_id).run()
    assert not at.exception, at.exception

    listed = at.dataframe[0].value.set_index("batch_id")
    assert listed.loc[batch_id, "held"] == 1
    assert any("Accepted plan" in m.value for m in at.markdown)
    plan = at.dataframe[1].value.set_index("table")
    assert plan.loc["users", "action"] == "anonymize"
    assert plan.loc["users", "columns"] == "email, full_name, phone"
    assert "invoices" not in plan.index  # retained: never in a plan
    records = at.dataframe[2].value.set_index("subject_id")
    assert "on legal hold" in records.loc[int(subject), "flags"]  # numeric keys sort as numbers
