"""The request desk for objection, restriction and rectification: the log form asks what each
kind needs, the officer previews a rectification, and lifts a restriction after telling the
subject."""

from __future__ import annotations

from sqlalchemy import select

from compliance.dsar.decisions import review_dsar
from compliance.dsar.processing import process_dsar_requests
from compliance.dsar.requests import submit
from compliance.store.models import DsarRequest, LegalHold
from tests.conftest import DEMO_POLICY, DPO, Deployment, person, with_mail_server
from tests.dashboard.conftest import OFFICER, SUPPORT, OpenApp, button, texts
from tests.smtp_server import Inbox
from tests.smtp_server import smtp_inbox as smtp_inbox  # the fixture


def request_of(d: Deployment, subject_id: str) -> DsarRequest:
    with d.session() as s:
        return s.scalars(select(DsarRequest).where(DsarRequest.subject_id == subject_id)).one()


def fill_log_form(at, kind: str, subject_id: str) -> None:  # type: ignore[no-untyped-def]
    at.radio(key="log_kind").set_value(kind).run()
    at.text_input(key="log_subject_id").input(subject_id)
    at.selectbox(key="log_method").select("id_document")
    at.text_area(key="log_identity_note").input("Passport seen at the desk")


def test_support_logs_an_objection_and_a_rectification_and_the_officer_decides_them(
    queue: Deployment, open_app: OpenApp
) -> None:
    at = open_app(SUPPORT, "views/dsar.py")
    fill_log_form(at, "objection", "31")
    at.selectbox(key="log_scope").select("direct_marketing")
    button(at, "Log request").click().run()
    assert any(t.startswith("Logged DSAR-") for t in texts(at, "success")), texts(at, "error")
    assert request_of(queue, "31").status == "approved"  # accepted at once (Art. 21(3))

    fill_log_form(at, "rectification", "32")
    at.text_area(key="log_corrections").input(
        "users.full_name = Grace Hopper\nusers.country = United Kingdom"
    )
    at.text_area(key="log_correction_words").input("My street is misspelt")
    button(at, "Log request").click().run()
    assert any("'users.country' holds at most 2 characters" in e for e in texts(at, "error"))
    assert at.text_area(key="log_correction_words").value == "My street is misspelt"
    at.text_area(key="log_corrections").input("users.full_name = Grace Hopper\nusers.country = GB")
    button(at, "Log request").click().run()
    reference = request_of(queue, "32").reference
    assert any(t.startswith(f"Logged {reference}") for t in texts(at, "success"))

    with queue.session() as s:
        objection = submit(
            s, queue.policy(), queue.app_engine, kind="objection", scope="direct_marketing",
            subject_id="33", requested_by=person(SUPPORT), execute=True,
        ).request.reference  # fmt: skip
    officer = open_app(OFFICER, "views/dsar.py")
    officer.selectbox(key="dsar_open").select(reference).run()
    asked = [df.value.to_dict("records") for df in officer.dataframe]
    assert [
        {"column": "users.full_name", "new value": "Grace Hopper"},
        {"column": "users.country", "new value": "GB"},
        {"column": "(in words)", "new value": "My street is misspelt"},
    ] in asked, asked
    button(officer, "Approve…").click().run()
    shown = [str(df.value.to_dict("records")) for df in officer.dataframe]
    assert any("full_name = Grace Hopper" in t and "country = GB" in t for t in shown), shown
    button(officer, "Approve").click().run()
    assert request_of(queue, "32").status == "approved"

    # An objection to direct marketing logged without an identity check waits for an officer,
    # who may approve it but is offered no rejection (Art. 21(3)).
    officer.selectbox(key="dsar_open").select(objection).run()
    labels = [b.label for b in officer.button]
    assert "Approve…" in labels and "Reject…" not in labels


def test_support_logs_a_restriction_and_a_portability_request_through_the_form(
    queue: Deployment, open_app: OpenApp
) -> None:
    at = open_app(SUPPORT, "views/dsar.py")
    for kind, subject_id in (("restriction", "35"), ("portability", "36")):
        fill_log_form(at, kind, subject_id)
        button(at, "Log request").click().run()
        logged = request_of(queue, subject_id)
        assert (logged.kind, logged.status, logged.identity_method) == (
            kind,
            "pending",
            "id_document",
        ), texts(at, "error")
        assert any(t.startswith(f"Logged {logged.reference}") for t in texts(at, "success"))


def test_an_officer_lifts_a_restriction_after_the_subject_was_told(
    queue: Deployment, open_app: OpenApp, smtp_inbox: Inbox
) -> None:
    queue.write_policy(with_mail_server(DEMO_POLICY, smtp_inbox.port))
    with queue.session() as s:
        reference = submit(
            s, queue.policy(), queue.app_engine, kind="restriction", subject_id="34",
            requested_by=person(SUPPORT), identity_method="id_document", execute=True,
        ).request.reference  # fmt: skip
        review_dsar(s, reference, "approve", reviewer=DPO, four_eyes=True, execute=True)
        process_dsar_requests(s, queue.datamap(), actor="cron", execute=True, deliver=False)
    at = open_app(OFFICER, "views/dsar.py")
    at.selectbox(key="dsar_open").select(reference).run()
    button(at, "Lift the restriction…").click().run()
    button(at, "Tell the subject and lift").click().run()
    assert "Lifting a restriction needs a reason." in texts(at, "error")
    at.text_area(key="confirm_reason").input("The accuracy of the data was verified")
    button(at, "Tell the subject and lift").click().run()
    assert any("the restriction of" in t and "is lifted" in t for t in texts(at, "success"))
    [mail] = smtp_inbox.messages
    assert "The accuracy of the data was verified" in mail.get_body(("plain",)).get_content()
    with queue.session() as s:
        hold = s.scalars(select(LegalHold).where(LegalHold.kind == "restriction")).one()
    assert hold.lifted_by == OFFICER


def test_bulk_reject_never_offers_an_objection_to_direct_marketing(
    queue: Deployment, open_app: OpenApp
) -> None:
    with queue.session() as s:  # logged without an identity check: it waits for an officer
        objection = submit(
            s, queue.policy(), queue.app_engine, kind="objection", scope="direct_marketing",
            subject_id="34", requested_by=person(SUPPORT), execute=True,
        ).request.reference  # fmt: skip
    at = open_app(OFFICER, "views/dsar.py")
    at.checkbox(key="dsar_all").check().run()
    (candidates,) = [d.value for d in at.dataframe if "rejection" in d.value.columns]
    rows = candidates.set_index("reference")
    assert rows.loc[objection, "rejection"] == "never refused (Art. 21(3))"
    assert any("never refused" in c for c in texts(at, "caption")), texts(at, "caption")
    button(at, "Reject these…").click().run()

    dialog = " ".join(m.value for m in at.markdown)
    assert objection not in dialog, "the dialog names only what it will reject"
    assert request_of(queue, "34").status == "pending"
