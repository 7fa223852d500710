"""The request desk: one request, one view; support exports and sends from the dashboard."""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import select, update

from compliance.dsar import desk
from compliance.dsar.decisions import extend_dsar, review_dsar
from compliance.dsar.processing import process_dsar_requests
from compliance.dsar.requests import get_dsar, submit
from compliance.reports.dsar_stats import dsar_counters, dsar_overview
from compliance.reports.review_queue import dsar_requests
from compliance.store.models import AuditEvent, DsarNote, DsarRequest, utcnow
from dashboard import export_jobs
from tests.conftest import DEMO_POLICY, Deployment, person, with_mail_server
from tests.dashboard.conftest import OFFICER, SUPPORT, OpenApp, button, texts
from tests.smtp_server import Inbox, free_port
from tests.smtp_server import smtp_inbox as smtp_inbox  # the fixture


def log_request(d: Deployment, subject_id: str, kind: str = "access", **extra: object) -> str:
    with d.session() as s:
        made = submit(
            s, d.policy(), d.app_engine, kind=kind, subject_id=subject_id,
            requested_by=person(SUPPORT),
            identity_method="id_document", identity_check="passport seen at the desk",
            execute=True, **extra,
        )  # fmt: skip
    return made.request.reference


def use_smtp(d: Deployment, inbox: Inbox) -> None:
    d.write_policy(with_mail_server(DEMO_POLICY, inbox.port))


def wait_for_export(reference: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        job = export_jobs.job_for(reference)
        if job is None or job.finished:
            return
        assert time.monotonic() < deadline, "the export did not finish"
        time.sleep(0.1)


def test_logging_without_an_identity_check_is_refused_in_the_dashboard(
    queue: Deployment, open_app: OpenApp
) -> None:
    at = open_app(SUPPORT)
    at.text_input[0].input("5")
    button(at, "Log request").click().run()
    assert any("identity was checked" in e for e in texts(at, "error")), texts(at, "error")
    with queue.session() as s:
        assert s.scalars(select(DsarRequest).where(DsarRequest.subject_id == "5")).first() is None


def test_the_list_puts_overdue_first_and_counters_count_everything(demo: Deployment) -> None:
    queue = demo  # no seeded requests: the counts below are all of them
    late = log_request(queue, "5")
    soon = log_request(queue, "6")
    later = log_request(queue, "7")
    done = log_request(queue, "8", kind="erasure")
    now = utcnow()
    with queue.session() as s:
        dues = [(late, now - timedelta(days=9, seconds=1)), (soon, now + timedelta(days=2)),
                (later, now + timedelta(days=20))]  # fmt: skip
        for reference, due in dues:
            s.execute(
                update(DsarRequest).where(DsarRequest.reference == reference).values(due_at=due)
            )
        s.execute(
            update(DsarRequest).where(DsarRequest.reference == done).values(status="rejected")
        )
        s.commit()
        frame, _ = dsar_requests(s, limit=2)  # one page of two: counters still see all
        counters = dsar_counters(s)
        overview = dsar_overview(s)
    assert frame["reference"].tolist() == [late, soon]
    assert (counters.open, counters.overdue, counters.due_this_week) == (3, 1, 1)
    # One rounding rule: the list's days left is minus Progress's days overdue.
    assert frame["days_left"].iloc[0] == -overview.overdue["days_overdue"].iloc[0] == -9


def test_support_exports_now_and_sends_the_link_and_the_timeline_shows_each_step(
    queue: Deployment, open_app: OpenApp, smtp_inbox: Inbox
) -> None:
    use_smtp(queue, smtp_inbox)
    reference = log_request(queue, "21")
    at = open_app(SUPPORT, "views/dsar.py")
    at.selectbox(key="dsar_open").select(reference).run()
    assert "Waiting for approval by a compliance officer." in texts(at, "info")
    assert not [b for b in at.button if b.label == "Export now"]

    with queue.session() as s:
        review_dsar(
            s, reference, "approve", reviewer=person(OFFICER), four_eyes=False, execute=True
        )
    at.run()
    button(at, "Export now").click().run()
    wait_for_export(reference)
    at.run()  # the page shows the finished export
    at.run()
    assert f"The export of {reference} is ready." in texts(at, "success") or [
        b for b in at.button if b.label == "Send to subject"
    ], texts(at, "error")
    with queue.session() as s:
        assert get_dsar(s, reference).status == "ready"  # built, the subject has nothing yet
    assert any("has not been sent the link yet" in t for t in texts(at, "info"))
    button(at, "Send to subject").click().run()
    assert any("Emailed" in t for t in texts(at, "success")), texts(at, "error")

    user = queue.app_rows("users", "id = 21")[0]
    assert [m["To"] for m in smtp_inbox.messages][-2:] == [user["email"]] * 2
    with queue.session() as s:
        detail = desk.request_detail(s, queue.policy(), reference, roles={"support"})
    labels = [e.label for e in detail.timeline]
    assert labels[:2] == ["Logged", "Approved"]
    assert "Export started" in labels
    built, sent = labels.index("Export built, ready to send"), labels.index("Completed")
    assert built < labels.index("Link and code sent to the subject") < sent
    with queue.session() as s:
        assert get_dsar(s, reference).status == "completed"
    assert [e.actor for e in detail.timeline if e.label == "Export started"] == [SUPPORT]


def test_without_access_review_support_exports_a_pending_request_at_once(
    queue: Deployment, open_app: OpenApp, smtp_inbox: Inbox
) -> None:
    use_smtp(queue, smtp_inbox)
    queue.write_policy(
        queue.policy_path.read_text().replace("access_review = true", "access_review = false")
    )
    reference = log_request(queue, "22")
    at = open_app(SUPPORT, "views/dsar.py")
    at.selectbox(key="dsar_open").select(reference).run()
    button(at, "Export now").click().run()
    wait_for_export(reference)
    with queue.session() as s:
        request = get_dsar(s, reference)
        assert request.status == "ready" and request.reviewed_by is None


def test_an_expired_export_is_not_offered(queue: Deployment) -> None:
    reference = log_request(queue, "23")
    with queue.session() as s:
        review_dsar(
            s, reference, "approve", reviewer=person(OFFICER), four_eyes=False, execute=True
        )
        process_dsar_requests(s, queue.datamap(), actor="jobs", execute=True)
        fresh = desk.request_detail(s, queue.policy(), reference, roles={"support"})
        assert {"send", "download"} <= set(fresh.actions)
        later = utcnow() + timedelta(days=queue.policy().dsar_export_days + 1)
        old = desk.request_detail(s, queue.policy(), reference, roles={"support"}, now=later)
    assert "send" not in old.actions and "download" not in old.actions
    assert "expired" in (old.waiting_for or "")


def test_staff_notes_are_kept_and_audited_without_their_text(
    queue: Deployment, open_app: OpenApp
) -> None:
    reference = log_request(queue, "24")
    at = open_app(SUPPORT, "views/dsar.py")
    at.selectbox(key="dsar_open").select(reference).run()
    [note_box] = [t for t in at.text_area if t.label.startswith("Add a note")]
    note_box.input("Customer called again; prefers email.")
    button(at, "Add note").click().run()
    assert f"Note added to {reference}." in texts(at, "success")
    assert "Customer called again; prefers email." in [t.value for t in at.text]
    with queue.session() as s:
        assert s.scalars(select(DsarNote.author)).all() == [SUPPORT]
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "dsar.note_added")).one()
        assert "prefers" not in str(event.details) and event.target_id == reference


def test_only_the_viewers_role_decides_the_actions(queue: Deployment) -> None:
    reference = log_request(queue, "25")
    policy = queue.policy()
    with queue.session() as s:
        officer = desk.request_detail(s, policy, reference, roles={"compliance_officer"})
        support = desk.request_detail(s, policy, reference, roles={"support"})
        manager = desk.request_detail(s, policy, reference, roles={"manager"})
    assert {"approve", "reject", "extend"} <= set(officer.actions)
    assert not {"approve", "reject", "extend", "export"} & set(support.actions)
    assert manager.actions == ()


def test_the_desk_stops_offering_an_extension_once_two_months_are_used(queue: Deployment) -> None:
    reference = log_request(queue, "26")
    officer = person(OFFICER)
    with queue.session() as s:
        extend_dsar(
            s, reference, policy=queue.policy(), months=2, reason="many systems", actor=officer,
            execute=True,
        )  # fmt: skip
        detail = desk.request_detail(s, queue.policy(), reference, roles={"compliance_officer"})
    assert "extend" not in detail.actions  # what next_actions says: can_extend is False
    assert {"approve", "reject"} <= set(detail.actions)


def test_an_officer_previews_and_sends_the_extension_notice_with_its_reason(
    queue: Deployment, open_app: OpenApp, smtp_inbox: Inbox
) -> None:
    use_smtp(queue, smtp_inbox)
    reference = log_request(queue, "26")
    at = open_app(OFFICER, "views/dsar.py")
    at.selectbox(key="dsar_open").select(reference).run()
    [reason] = [t for t in at.text_input if t.label == "Why the extension is needed"]
    reason.input("Records spread over six systems")
    button(at, "Extend deadline").click().run()

    assert [b.value for b in at.selectbox if b.label == "Notice"] == ["extension"]
    preview = [t.value for t in at.text]
    assert any("Records spread over six systems" in t for t in preview), preview
    button(at, "Send the extension notice").click().run()
    assert "The extension notice was sent to the subject." in texts(at, "success")
    [mail] = smtp_inbox.messages
    assert "Records spread over six systems" in mail.get_body(("plain",)).get_content()
    with queue.session() as s:
        labels = [
            e.label
            for e in desk.request_detail(s, queue.policy(), reference, roles={"support"}).timeline
        ]
    assert labels[-2:] == ["Deadline extended", "Notice sent to the subject"]


def test_a_notice_that_could_not_be_sent_keeps_the_reason_the_officer_wrote(
    queue: Deployment, open_app: OpenApp
) -> None:
    queue.write_policy(with_mail_server(DEMO_POLICY, free_port()))  # nothing listens there
    reference = log_request(queue, "27")
    at = open_app(OFFICER, "views/dsar.py")
    at.selectbox(key="dsar_open").select(reference).run()
    [reason] = [t for t in at.text_input if t.label == "Why the extension is needed"]
    reason.input("Records spread over six systems")
    button(at, "Extend deadline").click().run()
    key = f"notice_reason_{reference}_extension"
    at.text_area(key=key).input("Six systems, two of them on paper").run()

    button(at, "Send the extension notice").click().run()
    assert any("could not be sent" in e for e in texts(at, "error")), texts(at, "error")
    assert at.text_area(key=key).value == "Six systems, two of them on paper"
