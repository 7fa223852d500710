"""The DSAR requests page: support logs and follows requests, officers review them."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select, text

from compliance.dsar.decisions import review_dsar
from compliance.dsar.processing import process_dsar_requests
from compliance.dsar.requests import get_dsar, submit
from compliance.reports import versions
from compliance.store.models import AuditEvent, DsarRequest
from tests.conftest import DEMO_POLICY, Deployment, person
from tests.dashboard.conftest import OFFICER, SUPPORT, OpenApp, button, texts


def test_support_logs_an_access_request_and_sees_it_with_its_due_date(
    queue: Deployment, open_app: OpenApp
) -> None:
    at = open_app(SUPPORT)
    at.text_input[0].input("5")
    at.selectbox[0].select("id_document")
    at.text_area[0].input("Called back on the number in the account")
    button(at, "Log request").click().run()

    logged = [t for t in texts(at, "success") if t.startswith("Logged DSAR-")]
    assert logged, texts(at, "error")
    reference = logged[0].split()[1].rstrip(",")
    table = at.dataframe[0].value
    row = table.set_index("reference").loc[reference]
    assert (row["kind"], row["subject_id"], row["requested_by"]) == (
        "access",
        5,
        SUPPORT,
    )  # sorted as a number
    assert row["days_left"].endswith("day(s) left") and int(row["days_left"].split()[0]) >= 27
    assert not [b for b in at.button if b.label == "Approve…"]  # support does not review
    with queue.session() as session:
        request = get_dsar(session, reference)
        assert request.identity_check == "Called back on the number in the account"
        assert (request.identity_method, request.channel) == ("id_document", "dashboard")
    # The new request opens at once, with the waiting state support must see.
    assert at.header[0].value == reference
    assert "Waiting for approval by a compliance officer." in texts(at, "info")
    assert not [b for b in at.button if b.label == "Export now"]


def test_an_unknown_subject_is_refused_with_a_message(queue: Deployment, open_app: OpenApp) -> None:
    at = open_app(SUPPORT)
    at.text_input[0].input("999999")
    at.selectbox[0].select("id_document")
    button(at, "Log request").click().run()
    assert texts(at, "error")
    assert "999999" not in at.dataframe[0].value["subject_id"].astype(str).tolist()


def _logged(queue: Deployment, subject_id: str = "7") -> str:
    with queue.session() as session:
        made = submit(
            session, queue.policy(), queue.app_engine, kind="access", subject_id=subject_id,
            requested_by=person(SUPPORT), execute=True,
        )  # fmt: skip
    return made.request.reference


def test_an_officer_approves_a_request_through_the_dialog(
    queue: Deployment, open_app: OpenApp
) -> None:
    reference = _logged(queue)
    at = open_app(OFFICER)
    at.switch_page("views/dsar.py").run()
    at.selectbox(key="dsar_open").select(reference).run()
    assert "Identity check not recorded." in texts(at, "warning")  # logged without one
    button(at, "Approve…").click().run()
    button(at, "Approve").click().run()

    assert f"{reference} approved." in texts(at, "success")
    with queue.session() as session:
        request = get_dsar(session, reference)
        assert (request.status, request.reviewed_by) == ("approved", OFFICER)


def test_rejecting_a_request_requires_a_reason(queue: Deployment, open_app: OpenApp) -> None:
    reference = _logged(queue)
    at = open_app(OFFICER)
    at.switch_page("views/dsar.py").run()
    at.selectbox(key="dsar_open").select(reference).run()
    button(at, "Reject…").click().run()
    button(at, "Reject").click().run()

    assert "Rejecting a request needs a reason." in texts(at, "error")
    with queue.session() as session:
        assert get_dsar(session, reference).status == "pending"


def test_support_downloads_a_finished_export_and_the_download_is_audited(
    queue: Deployment, open_app: OpenApp
) -> None:
    reference = _logged(queue)
    with queue.session() as session:
        review_dsar(
            session, reference, "approve", reviewer=person(OFFICER), four_eyes=True, execute=True
        )
        process_dsar_requests(session, queue.datamap(), actor="jobs", execute=True)
        request = get_dsar(session, reference)
        assert request.status == "ready"  # built: staff may download it before it is sent
        export = Path(request.export_path)
    at = open_app(SUPPORT)
    at.selectbox(key="dsar_open").select(reference).run()
    button(at, "Prepare download").click().run()

    assert [d.label for d in at.get("download_button")] == [f"Download {export.name}"]
    with queue.session() as session:
        event = session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
    assert (event.action, event.actor, event.target_id) == (
        "dsar.export_downloaded",
        SUPPORT,
        reference,
    )


def test_an_officer_extends_a_deadline_with_a_reason(queue: Deployment, open_app: OpenApp) -> None:
    reference = _logged(queue)
    with queue.session() as session:
        due_before = get_dsar(session, reference).due_at
    at = open_app(OFFICER)
    at.switch_page("views/dsar.py").run()
    at.selectbox(key="dsar_open").select(reference).run()

    button(at, "Extend deadline").click().run()  # no reason given
    # The page names its own field, never the command line's flag.
    assert "extending a DSAR deadline needs a reason (Reason)" in texts(at, "error")
    assert not [e for e in texts(at, "error") if "--" in e]
    with queue.session() as session:
        assert get_dsar(session, reference).extended_due_at is None

    at.text_input[-1].input("Data held in six systems")
    button(at, "Extend deadline").click().run()
    with queue.session() as session:
        request = get_dsar(session, reference)
    assert request.extension_reason == "Data held in six systems"
    assert request.extended_due_at.month == (due_before.month % 12) + 1
    assert f"{reference} now due {request.extended_due_at:%Y-%m-%d}." in texts(at, "success")


def test_support_cannot_extend_deadlines(queue: Deployment, open_app: OpenApp) -> None:
    reference = _logged(queue)
    at = open_app(SUPPORT)

    at.selectbox(key="dsar_open").select(reference).run()
    assert at.header[0].value == reference
    assert not [b for b in at.button if b.label in ("Extend deadline", "Approve…")]


def test_an_officer_approves_every_pending_request_in_one_confirmation(
    queue: Deployment, open_app: OpenApp
) -> None:
    at = open_app(OFFICER)
    at.switch_page("views/dsar.py").run()
    table = at.dataframe[0].value
    pending = table.loc[table["status"] == "pending", "reference"].tolist()
    assert len(pending) >= 2
    at.checkbox(key="dsar_all").check().run()
    button(at, "Approve these…").click().run()
    # The dialog names every request it will decide, not only how many.
    assert any(all(r in m.value for r in pending) for m in at.markdown), pending
    with queue.session() as session:  # a colleague rejects one meanwhile
        colleague = person("colleague@example.com", roles=("compliance_officer",))
        review_dsar(
            session,
            pending[0],
            "reject",
            reviewer=colleague,
            four_eyes=False,
            reason="dup",
            execute=True,
        )
    button(at, f"Approve {len(pending)} request(s)").click().run()

    (message,) = [t for t in texts(at, "success") if "approved" in t]
    assert message.startswith(f"{len(pending) - 1} request(s) approved")
    assert f"Skipped {pending[0]}: {pending[0]} is already rejected" in message
    with queue.session() as session:
        assert [get_dsar(session, r).status for r in pending[1:]] == ["approved"] * (
            len(pending) - 1
        )
        approvals = session.scalars(
            select(AuditEvent.target_id).where(AuditEvent.action == "dsar.approved")
        ).all()
    assert set(pending[1:]) <= set(approvals)


def _seeded_erasure(queue: Deployment) -> str:
    """The demo's pending erasure request (subject 13)."""
    with queue.session() as session:
        return session.scalars(
            select(DsarRequest.reference).where(DsarRequest.kind == "erasure")
        ).one()


def test_approving_an_erasure_shows_its_impact_and_accepts_that_plan(
    queue: Deployment, open_app: OpenApp
) -> None:
    reference = _seeded_erasure(queue)
    at = open_app(OFFICER, "views/dsar.py")
    at.selectbox(key="dsar_open").select(reference).run()
    button(at, "Approve…").click().run()

    assert any("What approving erases" in t for t in texts(at, "markdown")), texts(at, "error")
    (preview,) = [d.value for d in at.dataframe if "legal_basis" in d.value.columns]
    rows = preview.set_index(["table", "action"])["rows"]
    assert rows[("users", "anonymize")] == 1
    assert any("no batch to review" in t for t in texts(at, "markdown"))
    button(at, "Approve").click().run()
    assert f"{reference} approved." in texts(at, "success")
    with queue.session() as session:
        request = get_dsar(session, reference)
        assert (request.status, request.reviewed_by) == ("approved", OFFICER)
        assert request.accepted_plan_hash is not None


def test_without_erasure_review_the_approval_shows_no_preview(
    queue: Deployment, open_app: OpenApp
) -> None:
    queue.write_policy(DEMO_POLICY.replace("erasure_review = true", "erasure_review = false"))
    reference = _seeded_erasure(queue)
    at = open_app(OFFICER, "views/dsar.py")
    at.selectbox(key="dsar_open").select(reference).run()
    button(at, "Approve…").click().run()

    assert not [t for t in texts(at, "markdown") if "What approving erases" in t]
    assert not [d for d in at.dataframe if "legal_basis" in d.value.columns]
    button(at, "Approve").click().run()
    with queue.session() as session:
        request = get_dsar(session, reference)
        assert request.status == "approved" and request.accepted_plan_hash is None


def test_a_link_opens_the_request_it_names_even_one_newer_than_the_cached_list(
    queue: Deployment, open_app: OpenApp
) -> None:
    open_app(OFFICER, "views/dsar.py")  # the list is read, and cached for a while
    with queue.session() as s:
        newer = submit(
            s, queue.policy(), queue.app_engine, kind="access", subject_id="61",
            requested_by=person(SUPPORT), identity_method="id_document", execute=True,
        ).request.reference  # fmt: skip
    for reference, shown in ((newer, True), ("DSAR-2026-999999", False)):
        linked = open_app(OFFICER)
        linked.query_params["reference"] = reference
        linked.switch_page("views/dsar.py").run()
        assert not linked.exception, linked.exception
        assert ([h.value for h in linked.header] == [reference]) is shown
        if not shown:  # said plainly, and nothing else opened in its place
            assert any(reference in e for e in texts(linked, "error")), texts(linked, "error")
            assert [h.value for h in linked.header] == []


def test_a_write_by_another_process_shows_at_once_though_the_list_is_cached(
    queue: Deployment, open_app: OpenApp
) -> None:
    """A job claiming a request writes no audit event; the list must not wait out its cache."""
    reference = _logged(queue)
    with queue.session() as session:
        review_dsar(
            session, reference, "approve", reviewer=person(OFFICER), four_eyes=True, execute=True
        )
    at = open_app(OFFICER, "views/dsar.py")

    def status_shown() -> str:
        return str(at.dataframe[0].value.set_index("reference").loc[reference, "status"])

    assert status_shown() == "approved"
    with queue.engine.begin() as conn:  # what process-dsar-requests' claim writes, unaudited
        conn.execute(
            text("UPDATE dsar_requests SET status = 'processing' WHERE reference = :r"),
            {"r": reference},
        )
    at.run()
    assert status_shown() == "processing"
    with queue.session() as s:  # and a request logged elsewhere appears in the same run
        newer = submit(
            s, queue.policy(), queue.app_engine, kind="access", subject_id="62",
            requested_by=person(SUPPORT), execute=True,
        ).request.reference  # fmt: skip
    at.run()
    assert newer in set(at.dataframe[0].value["reference"])


def test_the_database_numbers_every_change_of_a_request_whoever_writes_it(
    queue: Deployment,
) -> None:
    reference = _logged(queue)
    with queue.session() as s:
        before = versions.requests_version(s)
        first = s.scalar(select(DsarRequest.last_change).where(DsarRequest.reference == reference))
    with queue.engine.begin() as conn:
        conn.execute(
            text("UPDATE dsar_requests SET identity_check = 'x' WHERE reference = :r"),
            {"r": reference},
        )
    with queue.session() as s:
        after = versions.requests_version(s)
        later = s.scalar(select(DsarRequest.last_change).where(DsarRequest.reference == reference))
        newest = s.scalar(select(func.max(DsarRequest.last_change)))
    assert after != before
    assert later > first and later == newest
