"""Nothing typed is lost: every form on the DSAR page keeps its input after a refused
submit, and four eyes decides which buttons an officer is offered."""

from __future__ import annotations

from sqlalchemy import select

from compliance.dsar.decisions import review_dsar
from compliance.dsar.requests import get_dsar, submit
from compliance.store.models import DsarNote
from tests.conftest import DEMO_POLICY, Deployment, person
from tests.dashboard.conftest import OFFICER, SUPPORT, OpenApp, button, texts
from tests.dsar.test_jurisdictions import POLICY as JURISDICTIONS_POLICY

BELL = "\x07"  # a control character: the library refuses the text, naming its field


def _logged(queue: Deployment, subject_id: str = "7", by: str = SUPPORT) -> str:
    with queue.session() as session:
        made = submit(
            session, queue.policy(), queue.app_engine, kind="access", subject_id=subject_id,
            requested_by=person(by), identity_method="id_document",
            identity_check="Passport seen by Ann", execute=True,
        )  # fmt: skip
    return made.request.reference


def _opened(open_app: OpenApp, email: str, reference: str):  # type: ignore[no-untyped-def]
    at = open_app(email)
    at.switch_page("views/dsar.py").run()
    at.selectbox(key="dsar_open").select(reference).run()
    return at


def test_a_refused_request_form_keeps_kind_subject_method_and_note(
    queue: Deployment, open_app: OpenApp
) -> None:
    queue.write_policy(JURISDICTIONS_POLICY)
    at = open_app(SUPPORT)
    at.radio(key="log_kind").set_value("erasure")
    at.text_input(key="log_subject_id").input("999999")  # no such subject
    at.selectbox(key="log_method").select("id_document")
    at.selectbox(key="log_jurisdiction").select("ccpa")  # chosen at intake, whatever the country
    at.text_area(key="log_identity_note").input("Called back on the number on file")
    button(at, "Log request").click().run()

    assert any("999999" in e for e in texts(at, "error")), texts(at, "error")
    assert at.radio(key="log_kind").value == "erasure"
    assert at.text_input(key="log_subject_id").value == "999999"
    assert at.selectbox(key="log_method").value == "id_document"
    assert at.text_area(key="log_identity_note").value == "Called back on the number on file"
    assert at.selectbox(key="log_jurisdiction").value == "ccpa"

    at.text_input(key="log_subject_id").input("8")  # corrected: logged, and the form empties
    button(at, "Log request").click().run()
    assert any(t.startswith("Logged DSAR-") for t in texts(at, "success")), texts(at, "error")
    assert at.text_input(key="log_subject_id").value == ""
    assert at.text_area(key="log_identity_note").value == ""
    assert at.selectbox(key="log_jurisdiction").value is None  # by the subject's country
    with queue.session() as session:
        logged = get_dsar(session, at.header[0].value)
    assert (logged.subject_id, logged.jurisdiction) == ("8", "ccpa")
    assert (logged.due_at - logged.requested_at).days == 45


def test_a_refused_rejection_keeps_its_reason_and_the_cancel_button(
    queue: Deployment, open_app: OpenApp
) -> None:
    reference = _logged(queue)
    at = _opened(open_app, OFFICER, reference)
    button(at, "Reject…").click().run()
    button(at, "Reject").click().run()  # no reason
    assert "Rejecting a request needs a reason." in texts(at, "error")
    assert button(at, "Cancel")  # still there to back out

    at.text_area(key="confirm_reason").input(f"Duplicate {BELL}of another request")
    button(at, "Reject").click().run()
    assert any("Reason holds a control character" in e for e in texts(at, "error"))
    assert at.text_area(key="confirm_reason").value == f"Duplicate {BELL}of another request"
    assert button(at, "Cancel")
    with queue.session() as session:
        assert get_dsar(session, reference).status == "pending"

    button(at, "Cancel").click().run()
    assert not [b for b in at.button if b.label == "Reject"]


def test_a_refused_extension_keeps_its_length_unit_and_reason(
    queue: Deployment, open_app: OpenApp
) -> None:
    reference = _logged(queue)
    at = _opened(open_app, OFFICER, reference)
    key, count, unit = (f"extend_{k}_{reference}" for k in ("reason", "by", "unit"))
    assert at.radio(key=unit).value == "months"  # GDPR extends in months
    at.number_input(key=count).set_value(3)
    at.text_input(key=key).input("Six systems hold data")
    button(at, "Extend deadline").click().run()
    assert any("later than gdpr allows" in e for e in texts(at, "error")), texts(at, "error")
    at.number_input(key=count).set_value(10)
    at.radio(key=unit).set_value("days")
    at.text_input(key=key).input(f"Six systems {BELL}hold data")
    button(at, "Extend deadline").click().run()

    assert any("control character" in e for e in texts(at, "error")), texts(at, "error")
    assert at.text_input(key=key).value == f"Six systems {BELL}hold data"
    assert (at.number_input(key=count).value, at.radio(key=unit).value) == (10, "days")
    at.text_input(key=key).input("Six systems hold data")
    button(at, "Extend deadline").click().run()
    with queue.session() as session:
        request = get_dsar(session, reference)
    assert (request.extension_months, request.extension_days) == (0, 10)
    assert at.text_input(key=key).value == ""


def test_a_refused_note_keeps_its_text(queue: Deployment, open_app: OpenApp) -> None:
    reference = _logged(queue)
    at = _opened(open_app, SUPPORT, reference)
    key = f"note_body_{reference}"
    at.text_area(key=key).input(f"Subject rang {BELL}twice")
    button(at, "Add note").click().run()

    assert any("control character" in e for e in texts(at, "error")), texts(at, "error")
    assert at.text_area(key=key).value == f"Subject rang {BELL}twice"
    at.text_area(key=key).input("Subject rang twice")
    button(at, "Add note").click().run()
    with queue.session() as session:
        assert session.scalars(select(DsarNote.body)).all() == ["Subject rang twice"]
    assert at.text_area(key=key).value == ""


def test_four_eyes_hides_approve_from_the_author_in_one_and_in_bulk(
    queue: Deployment, open_app: OpenApp
) -> None:
    queue.write_policy(DEMO_POLICY + "\n[review]\nfour_eyes = true\n")
    mine = _logged(queue, "9", by=OFFICER)
    theirs = _logged(queue, "10", by=SUPPORT)
    at = _opened(open_app, OFFICER, mine)
    assert not [b for b in at.button if b.label == "Approve…"]
    assert [b for b in at.button if b.label == "Reject…"]
    assert any("four eyes" in t for t in texts(at, "info"))

    # Bulk: each request's identity evidence, and the author's own request not approvable.
    evidence = at.dataframe[1].value.set_index("reference")
    assert evidence.loc[mine, "identity_method"] == "id document"
    assert evidence.loc[theirs, "identity_note"] == "Passport seen by Ann"
    assert evidence.loc[mine, "approval"] != "" and evidence.loc[theirs, "approval"] == ""
    at.multiselect(key="dsar_bulk").select(mine).select(theirs).run()
    assert any("You logged 1 of these" in c for c in texts(at, "caption"))
    button(at, "Approve these…").click().run()
    button(at, "Approve 1 request(s)").click().run()
    with queue.session() as session:
        assert get_dsar(session, theirs).status == "approved"
        assert get_dsar(session, mine).status == "pending"
    # Someone else may approve it.
    with queue.session() as session:
        review_dsar(
            session, mine, "approve", reviewer=person(SUPPORT, roles=("compliance_officer",)),
            four_eyes=True, execute=True,
        )  # fmt: skip
        assert get_dsar(session, mine).status == "approved"


def test_an_erasure_approval_whose_preview_went_stale_is_refused_in_the_dialog(
    queue: Deployment, open_app: OpenApp
) -> None:
    with queue.session() as session:
        reference = submit(
            session, queue.policy(), queue.app_engine, kind="erasure", subject_id="11",
            requested_by=person(SUPPORT), execute=True,
        ).request.reference  # fmt: skip
    at = _opened(open_app, OFFICER, reference)
    button(at, "Approve…").click().run()
    # The policy changes under the open dialog: approving would now erase something else.
    queue.write_policy(DEMO_POLICY.replace(', phone = "null" }', " }", 1))
    button(at, "Approve").click().run()

    assert any("changed since you looked" in e for e in texts(at, "error")), texts(at, "error")
    with queue.session() as session:
        assert get_dsar(session, reference).status == "pending"
