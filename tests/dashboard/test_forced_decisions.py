"""A session that forces its way to a decision meets the library's role check.

The DSAR page offers "Approve…" only to officers, but its confirmation dialog is driven by
session state. A support session that sets that state itself reaches the dialog; the
library refuses the approval, the page says so with st.error, and nothing changes.
"""

from __future__ import annotations

from sqlalchemy import func, select

from compliance.dsar.requests import get_dsar, submit
from compliance.store.models import AuditEvent
from tests.conftest import DEMO_POLICY, Deployment, person
from tests.dashboard.conftest import OFFICER, SUPPORT, OpenApp, button, texts


def logged_by(queue: Deployment, email: str, subject_id: str = "7") -> str:
    with queue.session() as session:
        made = submit(
            session, queue.policy(), queue.app_engine, kind="access", subject_id=subject_id,
            requested_by=person(email, queue.policy()), execute=True,
        )  # fmt: skip
    assert made.request.reference is not None
    return made.request.reference


def approvals(queue: Deployment) -> int:
    with queue.session() as session:
        return session.scalar(select(func.count()).where(AuditEvent.action == "dsar.approved")) or 0


def test_a_support_session_forcing_the_approval_dialog_is_refused(
    queue: Deployment, open_app: OpenApp
) -> None:
    reference = logged_by(queue, SUPPORT)
    before = approvals(queue)  # the demo seed approved one request already
    at = open_app(SUPPORT)
    at.selectbox(key="dsar_open").select(reference).run()
    assert not [b for b in at.button if b.label == "Approve…"]  # not offered to support
    # What a tampered session would hold: the dialog's pending confirmation.
    at.session_state["pending_confirmation"] = {"action": "dsar_approve", "reference": reference}
    at.run()
    button(at, "Approve").click().run()

    errors = texts(at, "error")
    assert any(f"{SUPPORT} may not review DSAR requests" in e for e in errors), errors
    assert not any("approved" in t for t in texts(at, "success"))
    with queue.session() as session:
        request = get_dsar(session, reference)
        assert (request.status, request.reviewed_by) == ("pending", None)
    assert approvals(queue) == before


def test_with_four_eyes_the_officer_who_logged_a_request_cannot_approve_it(
    queue: Deployment, open_app: OpenApp
) -> None:
    queue.write_policy(DEMO_POLICY + "\n[review]\nfour_eyes = true\n")
    reference = logged_by(queue, OFFICER)
    before = approvals(queue)
    at = open_app(OFFICER)
    at.switch_page("views/dsar.py").run()
    at.selectbox(key="dsar_open").select(reference).run()
    assert not [b for b in at.button if b.label == "Approve…"]  # not offered to the author
    # What a tampered session would hold: the dialog's pending confirmation.
    at.session_state["pending_confirmation"] = {"action": "dsar_approve", "reference": reference}
    at.run()
    button(at, "Approve").click().run()

    errors = texts(at, "error")
    assert any(f"{OFFICER} logged {reference} and may not approve it too" in e for e in errors)
    with queue.session() as session:
        assert get_dsar(session, reference).status == "pending"
    assert approvals(queue) == before
