"""The dashboard of a desk serving two kinds of data subject (customers and employees).

Every page opens; the log form asks which kind a request is about, and an email left to
"any" kind logs one request per kind the person is found in.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from compliance.store.models import ComplianceProfile, DeletionBatch, DsarRequest
from dashboard.navigation import PAGES
from tests.conftest import Backend, Deployment, ok
from tests.dashboard.conftest import APP, SIGNED_IN_AS, behind_proxy, button, texts
from tests.two_kinds import (
    ALICE,
    OFFICER,
    SUPPORT,
    two_kinds_desk,
)


def open_as(d: Deployment, monkeypatch: pytest.MonkeyPatch, email: str) -> AppTest:
    """Signed in through the authenticating proxy: this desk is not the demo."""
    d.use_env(monkeypatch)
    behind_proxy(monkeypatch)
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.session_state[SIGNED_IN_AS] = email
    return at.run()


@pytest.fixture
def desk(backend: Backend, tmp_path: Path) -> Iterator[Deployment]:
    yield from two_kinds_desk(backend, tmp_path / "desk")
    st.cache_data.clear()
    st.cache_resource.clear()


def test_every_page_opens_for_the_officer(
    desk: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    for bucket in ("former_staff", "dormant_customers"):
        ok(desk.run("create-deletion-records", "--bucket", bucket, "--execute"))
        ok(desk.run("create-deletion-batches", "--bucket", bucket, "--execute"))
    at = open_as(desk, monkeypatch, OFFICER)
    for page, title, _, _roles in PAGES:
        at.switch_page(page).run()
        assert not at.exception, f"{title}: {at.exception}"
    at.switch_page("views/batches.py").run()
    at.selectbox(key="status_filter").set_value("all").run()
    with desk.session() as s:
        batches = list(s.scalars(select(DeletionBatch.id)))
    assert len(batches) == 2
    for batch_id in batches:  # each with its rules' evidence
        at.selectbox(key="open_batch").set_value(batch_id).run()
        assert not at.exception, f"batch {batch_id}: {at.exception}"
        assert at.dataframe, f"batch {batch_id} shows no records"
        said = [c.value for c in at.caption if c.value.startswith("Data subjects:")]
        assert said in (
            ["Data subjects: employees (employees)"],
            ["Data subjects: customers (customers)"],
        )


def test_an_email_of_any_kind_logs_one_request_per_kind(
    desk: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_as(desk, monkeypatch, SUPPORT)
    at.radio(key="log_kind").set_value("access")
    at.text_input(key="log_email").input(ALICE)
    assert (
        at.selectbox(key="log_subject_type").value == "Any kind"
    )  # the default: the email in each kind
    at.selectbox(key="log_method").select("id_document")
    at.text_area(key="log_identity_note").input("Passport seen")
    button(at, "Log request").click().run()
    (said,) = texts(at, "success")
    assert said.count("Logged DSAR-") == 2, said
    assert "(customers)" in said and "(employees)" in said
    with desk.session() as s:
        made = s.execute(select(DsarRequest.subject_type, DsarRequest.subject_id)).all()
    assert sorted(made) == [("customers", "ALFKI"), ("employees", "5")]
    listed = at.dataframe[0].value  # the requests list says whose each is
    whose = zip(listed["subject_type"], listed["subject_id"].astype(str), strict=True)
    assert sorted(whose) == sorted(made)
    at = open_as(desk, monkeypatch, OFFICER)  # the figures, split by kind of subject
    at.switch_page("views/progress.py").run()
    (per_kind,) = [f.value for f in at.dataframe if "subject_type" in f.value.columns]
    assert list(per_kind["subject_type"]) == ["customers", "employees"]
    assert list(per_kind["received"]) == [1, 1]


def test_an_id_is_logged_for_the_kind_chosen(
    desk: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_as(desk, monkeypatch, SUPPORT)
    at.radio(key="log_kind").set_value("erasure")
    at.text_input(key="log_subject_id").input("5")
    at.selectbox(key="log_subject_type").select("customers")
    at.selectbox(key="log_method").select("id_document")
    at.text_area(key="log_identity_note").input("Passport seen")
    button(at, "Log request").click().run()
    assert any("(customers)" in t for t in texts(at, "success")), texts(at, "error")
    with desk.session() as s:
        made = s.execute(select(DsarRequest.subject_type, DsarRequest.subject_id)).all()
    assert made == [("customers", "5")]


def test_a_hold_is_placed_on_the_kind_chosen_and_listed_with_it(
    desk: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_as(desk, monkeypatch, OFFICER)
    at.switch_page("views/holds.py").run()
    at.text_input(key="hold_who").input("5")
    at.selectbox(key="hold_subject_type").select("employees")
    at.text_area(key="hold_reason").input("Tribunal claim")
    button(at, "Place hold").click().run()
    assert any("Placed legal hold" in t for t in texts(at, "success")), texts(at, "error")
    listed = at.dataframe[0].value
    assert list(listed["subject_type"]) == ["employees"]
    assert list(listed["subject_id"].astype(str)) == ["5"]
    with desk.session() as s:
        held = s.execute(select(ComplianceProfile.subject_type, ComplianceProfile.subject_id)).all()
    assert held == [("employees", "5")]


def test_subjects_of_an_undeclared_kind_stop_the_dashboard_as_they_stop_every_job(
    desk: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    with desk.session() as s:  # made when the policy had one plain [subjects] section
        s.add(ComplianceProfile(subject_id="5", subject_type="default"))
        s.commit()
    at = open_as(desk, monkeypatch, OFFICER)
    (said,) = texts(at, "error")
    assert said.startswith(
        "The dashboard cannot start: the compliance database holds subjects of kind "
        "'default', which the policy no longer declares (it declares customers, employees)"
    )
