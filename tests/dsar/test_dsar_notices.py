"""Notices to the data subject, sent to a real local SMTP server (aiosmtpd on 127.0.0.1)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from compliance.dsar.decisions import extend_dsar, review_dsar
from compliance.dsar.desk import request_detail
from compliance.dsar.notices import render_notice, retry_notice, send_notice
from compliance.dsar.processing import process_dsar_requests
from compliance.dsar.requests import get_dsar, submit
from compliance.errors import ConfigError, Conflict, InvalidInput
from compliance.store.models import AuditEvent
from tests.conftest import DEMO_POLICY, Deployment, person, with_mail_server
from tests.smtp_server import Inbox, free_port, mailing_to
from tests.smtp_server import smtp_inbox as smtp_inbox  # the fixture

STAFF = "support@example.com"
OFFICER = "dpo@example.com"


def point_at(d: Deployment, port: int, extra: str = "") -> None:
    body = with_mail_server(DEMO_POLICY, port)
    d.write_policy(body.replace("[dsar]\n", "[dsar]\n" + extra))


def logged(d: Deployment, subject_id: str = "21", kind: str = "access") -> str:
    with d.session() as s:
        return submit(
            s, d.policy(), d.app_engine, kind=kind, subject_id=subject_id,
            requested_by=person(STAFF),
            identity_method="id_document", identity_check="passport", execute=True,
        ).request.reference  # fmt: skip


def parts(message) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    return text, html


def test_each_notice_reaches_the_subject_with_what_the_law_asks_it_to_say(
    demo: Deployment, smtp_inbox: Inbox
) -> None:
    # The run that builds the export sends its link and code: the request is then completed.
    demo.write_policy(mailing_to(smtp_inbox, DEMO_POLICY))
    policy = demo.policy()
    email = demo.app_rows("users", "id = 21")[0]["email"]
    reference = logged(demo)
    refused = logged(demo, "22", "erasure")
    with demo.session() as s:
        assert (
            send_notice(s, policy, reference, "acknowledgement", actor=person(STAFF)).status
            == "sent"
        )
        extended = extend_dsar(
            s, reference, policy=policy, months=1, reason="Data <held> in six systems",
            actor=person(OFFICER), execute=True,
        )  # fmt: skip
        send_notice(s, policy, reference, "extension", actor=person(OFFICER))
        review_dsar(
            s,
            refused,
            "reject",
            reviewer=person(OFFICER),
            four_eyes=False,
            reason="We hold no data on you",
            execute=True,
        )
        send_notice(s, policy, refused, "refusal", actor=person(OFFICER))
        review_dsar(
            s, reference, "approve", reviewer=person(OFFICER), four_eyes=False, execute=True
        )
        process_dsar_requests(s, demo.datamap(), actor="jobs", execute=True)
        send_notice(s, policy, reference, "completion", actor=person(STAFF))

    ack, ext, refusal, link, code, done = smtp_inbox.messages
    other = demo.app_rows("users", "id = 22")[0]["email"]
    assert [m["To"] for m in smtp_inbox.messages] == [email, email, other, email, email, email]
    assert "token=" in link.get_content() and "download code" in code["Subject"]
    text, html = parts(ack)
    assert reference in ack["Subject"] and reference in text
    with demo.session() as s:
        due = get_dsar(s, reference).due_at
    assert f"{due:%Y-%m-%d}" in text and f"{due:%Y-%m-%d}" in html
    text, html = parts(ext)
    assert f"{extended.extended_due_at:%Y-%m-%d}" in text
    assert "Data <held> in six systems" in text and "Data &lt;held&gt; in six systems" in html
    text, _ = parts(refusal)
    assert "We hold no data on you" in text
    assert "complaint with a data protection supervisory" in text and "Art. 77" in text
    text, _ = parts(done)
    assert "is complete" in text and "download link" in text

    with demo.session() as s:
        detail = request_detail(s, policy, reference, roles={"support"})
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "dsar.notice_sent")).all()
    assert [n.kind for n in detail.notices] == ["acknowledgement", "extension", "completion"]
    assert [e.label for e in detail.timeline].count("Notice sent to the subject") == 3
    assert all(email not in str(e.details) and "six systems" not in str(e.details) for e in events)


def test_a_notice_that_cannot_be_sent_is_visible_and_retried(
    demo: Deployment, smtp_inbox: Inbox
) -> None:
    point_at(demo, free_port())  # nobody listens there
    reference = logged(demo)
    with demo.session() as s:
        failed = send_notice(s, demo.policy(), reference, "acknowledgement", actor=person(STAFF))
    assert failed.status == "failed" and "unreachable" in (failed.error or "")
    with demo.session() as s:
        detail = request_detail(s, demo.policy(), reference, roles={"support"})
    assert [(n.status, n.attempts) for n in detail.notices] == [("failed", 1)]
    assert "Notice could not be sent" in [e.label for e in detail.timeline]

    point_at(demo, smtp_inbox.port)
    with demo.session() as s:
        again = retry_notice(s, demo.policy(), failed.notice_id, actor=person(STAFF))
        assert again.status == "sent"
        with pytest.raises(Conflict):
            retry_notice(s, demo.policy(), failed.notice_id, actor=person(STAFF))
    assert len(smtp_inbox.messages) == 1


def test_refusals_and_extensions_need_a_reason_and_fit_the_state(demo: Deployment) -> None:
    reference = logged(demo)
    with demo.session() as s:
        request = get_dsar(s, reference)
        with pytest.raises(Conflict):
            render_notice(demo.policy(), request, "refusal", reason="no")  # not rejected
        with pytest.raises(Conflict):
            render_notice(demo.policy(), request, "completion")
        review_dsar(
            s,
            reference,
            "reject",
            reviewer=person(OFFICER),
            four_eyes=False,
            reason="duplicate",
            execute=True,
        )
        request = get_dsar(s, reference)
        with pytest.raises(InvalidInput, match="must tell the subject the reason"):
            render_notice(demo.policy(), request, "refusal", reason="  ")
        # What goes into the subject's email passes the same check as every typed reason.
        with pytest.raises(InvalidInput, match="reason holds a control character"):
            render_notice(demo.policy(), request, "refusal", reason="see \x1b[2Jabove")
        sent = render_notice(demo.policy(), request, "refusal", reason=" A duplicate.\n ")
        assert "A duplicate." in sent.text


def test_a_deployment_overrides_one_template_and_keeps_the_others(
    demo: Deployment, tmp_path: Path
) -> None:
    templates = demo.dir / "notices"
    templates.mkdir()
    (templates / "acknowledgement.txt").write_text(
        "Subject: Ihre Anfrage $reference\n\nWir antworten bis $due_date.\n"
    )
    point_at(demo, 25, 'templates_dir = "notices"\n')
    reference = logged(demo)
    with demo.session() as s:
        request = get_dsar(s, reference)
        ack = render_notice(demo.policy(), request, "acknowledgement")
        assert ack.subject == f"Ihre Anfrage {reference}" and "Wir antworten bis" in ack.text
        assert "We will answer by" in ack.html  # the shipped HTML stays
        (templates / "acknowledgement.txt").write_text("Subject: x\n\n$unknown_thing\n")
        with pytest.raises(ConfigError, match=r"\$unknown_thing"):
            render_notice(demo.policy(), request, "acknowledgement")
