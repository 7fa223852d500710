"""The Legal holds page: officers see, place and lift holds; nobody else sees it."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from compliance.dsar.processing import process_dsar_requests
from compliance.dsar.requests import submit
from compliance.store.models import LegalHold
from tests.conftest import Deployment, person
from tests.dashboard.conftest import MANAGER, OFFICER, SUPPORT, OpenApp, button, texts

PAGE = "views/holds.py"


def test_an_officer_places_and_lifts_a_hold(queue: Deployment, open_app: OpenApp) -> None:
    at = open_app(OFFICER, PAGE)
    assert texts(at, "title") == ["Legal holds"]
    assert "No legal holds in force." in [c.value for c in at.caption]

    at.text_input[0].input("42")
    at.text_area[0].input("litigation: case 17")
    button(at, "Place hold").click().run()
    assert not at.exception, at.exception
    with queue.session() as s:
        placed = s.scalars(select(LegalHold)).one()
    assert (placed.placed_by, placed.reason, placed.until, placed.lifted_at) == (
        OFFICER, "litigation: case 17", None, None,
    )  # fmt: skip
    assert any(f"Placed legal hold {placed.id} on subject 42" in t for t in texts(at, "success"))
    listed = at.dataframe[0].value
    assert list(listed["subject_id"]) == ["42"] and list(listed["status"]) == ["active"]

    at.selectbox[0].set_value(placed.id)
    button(at, "Lift hold").click().run()
    assert texts(at, "success") == []  # no reason: nothing lifted
    assert "lifting a legal hold needs a reason" in texts(at, "error")
    at.selectbox[0].set_value(placed.id)
    at.text_area[1].input("case settled")
    button(at, "Lift hold").click().run()
    with queue.session() as s:
        lifted = s.get(LegalHold, placed.id)
    assert (lifted.lifted_by, lifted.lifted_reason) == (OFFICER, "case settled")


def test_managers_cannot_open_legal_holds(queue: Deployment, open_app: OpenApp) -> None:
    at = open_app(MANAGER)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(PAGE)


def test_the_suppression_list_shows_who_objected_by_key_and_hash_never_by_address(
    queue: Deployment, open_app: OpenApp
) -> None:
    with queue.session() as s:
        reference = submit(
            s, queue.policy(), queue.app_engine, kind="objection", scope="direct_marketing",
            subject_id="31", requested_by=person(SUPPORT), identity_method="id_document",
            identity_check="passport", execute=True,
        ).request.reference  # fmt: skip
        process_dsar_requests(s, queue.datamap(), actor="cron", execute=True, deliver=False)
    email = queue.app_rows("users", "id = 31")[0]["email"]
    at = open_app(OFFICER, PAGE)
    listed = at.dataframe[0].value
    assert listed[["subject_id", "scope", "reference"]].to_dict("records") == [
        {"subject_id": "31", "scope": "direct_marketing", "reference": reference}
    ]
    assert listed["email_hash"].iloc[0] and email not in listed.to_string()
    downloads = at.get("download_button")
    assert [d.proto.label for d in downloads] == ["Download the suppression list (CSV)"]


def test_a_refused_hold_form_keeps_what_was_typed(queue: Deployment, open_app: OpenApp) -> None:
    at = open_app(OFFICER, PAGE)
    at.text_input(key="hold_who").input("no-such-subject")
    at.text_area(key="hold_reason").input("litigation: case 18")
    button(at, "Place hold").click().run()
    assert texts(at, "error"), "an unknown subject is refused"
    assert at.text_input(key="hold_who").value == "no-such-subject"
    assert at.text_area(key="hold_reason").value == "litigation: case 18"
    with queue.session() as s:
        assert s.scalars(select(LegalHold)).all() == []

    at.text_input(key="hold_who").input("42")
    button(at, "Place hold").click().run()
    assert any("Placed legal hold" in t for t in texts(at, "success")), texts(at, "error")
    assert at.text_input(key="hold_who").value == ""  # saved: the form is empty again
    with queue.session() as s:
        hold_id = s.scalars(select(LegalHold.id)).one()
    at.selectbox(key="lift_hold_id").set_value(hold_id)
    button(at, "Lift hold").click().run()
    assert "lifting a legal hold needs a reason" in texts(at, "error")
    assert at.selectbox(key="lift_hold_id").value == hold_id
