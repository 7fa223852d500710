"""The Legal holds page: officers see, place and lift holds; nobody else sees it."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from compliance.store.models import LegalHold
from tests.conftest import Deployment
from tests.dashboard.conftest import MANAGER, OFFICER, OpenApp, button, texts

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
