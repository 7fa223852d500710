"""Delivery is part of the schedule: process-dsar-requests mails the link once the export is built.

An access request is ``ready`` while its export waits for delivery and ``completed`` only once
the mail server accepted the link email. A refused send leaves it ready, on its timeline, and
the next run tries again after a backoff; support's Send to subject works at any time.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from compliance.dsar.decisions import review_dsar
from compliance.dsar.delivery import deliver_export
from compliance.dsar.mailer import MailError
from compliance.dsar.processing import plan_dsar_processing, process_dsar_requests
from compliance.dsar.requests import submit_dsar
from compliance.store.models import AuditEvent, DsarRequest, utcnow
from tests.conftest import DEMO_POLICY, DPO, SUPPORT_STAFF, Deployment
from tests.smtp_server import Inbox, free_port, mailing_to
from tests.smtp_server import smtp_inbox as smtp_inbox  # the fixture


def approved_access(d: Deployment, subject: str) -> str:
    with d.session() as s:
        reference = submit_dsar(
            s, d.policy(), d.app_engine, kind="access", subject_id=subject,
            requested_by=SUPPORT_STAFF, execute=True,
        ).reference  # fmt: skip
        review_dsar(s, reference, "approve", reviewer=DPO, four_eyes=True, execute=True)
    return reference


def row(d: Deployment, reference: str) -> DsarRequest:
    with d.session() as s:
        return s.scalars(select(DsarRequest).where(DsarRequest.reference == reference)).one()


def actions(d: Deployment, reference: str) -> list[str]:
    with d.session() as s:
        return list(
            s.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.target_id == reference)
                .order_by(AuditEvent.id)
            )
        )


def without_smtp(policy_text: str) -> str:
    """The policy with no [smtp] section at all (it is the shipped file's last one)."""
    kept = re.sub(r"\n\[smtp\][^\[]*", "\n", policy_text)
    assert "\n[smtp]" not in kept and kept != policy_text
    return kept


def test_the_run_that_builds_the_export_mails_the_link_and_the_code(
    demo: Deployment, smtp_inbox: Inbox
) -> None:
    demo.write_policy(mailing_to(smtp_inbox, DEMO_POLICY))
    reference = approved_access(demo, "42")
    email = demo.app_rows("users", "id = 42")[0]["email"]

    result = demo.run("--json", "process-dsar-requests", "--execute")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["delivered"], out["completed"], out["ready"]) == ([reference], [reference], [])

    assert [m["To"] for m in smtp_inbox.messages] == [email, email]
    link_mail, code_mail = smtp_inbox.bodies()
    assert "token=" in link_mail and re.search(r"code is \d{6}", code_mail)
    done = row(demo, reference)
    assert done.status == "completed" and done.completed_at >= done.exported_at
    story = actions(demo, reference)
    # Built, then sent, then completed: in that order on the timeline.
    assert story.index("dsar.export_ready") < story.index("dsar.delivery_created")
    assert story.index("dsar.delivery_created") < story.index("dsar.completed")


def test_without_an_smtp_section_the_export_stays_ready_and_the_run_says_why(
    demo: Deployment,
) -> None:
    demo.write_policy(
        without_smtp(DEMO_POLICY.replace("auto_deliver = false", "auto_deliver = true"))
    )
    reference = approved_access(demo, "43")

    result = demo.run("process-dsar-requests", "--execute")
    assert result.exit_code == 0, result.output
    notes = [line for line in result.output.splitlines() if "[smtp]" in line]
    assert notes == ["No links sent: no [smtp] section in the policy: ready exports wait for "
                     "Send to subject"]  # fmt: skip
    ready = row(demo, reference)
    assert ready.status == "ready" and ready.completed_at is None and ready.last_error is None
    assert "dsar.delivery_failed" not in actions(demo, reference)


def test_a_refused_send_stays_ready_on_the_timeline_and_the_next_run_retries_it(
    demo: Deployment,
) -> None:
    port = free_port()  # nothing listens there yet
    inbox = Inbox("127.0.0.1", port)
    demo.write_policy(
        mailing_to(inbox, DEMO_POLICY).replace("max_attempts = 3", "max_attempts = 2")
    )
    reference = approved_access(demo, "44")

    first = demo.run("process-dsar-requests", "--execute")
    assert first.exit_code == 0, first.output
    assert f"{reference}: the link could not be sent" in first.output
    waiting = row(demo, reference)
    assert waiting.status == "ready" and waiting.completed_at is None
    assert waiting.last_error.startswith("the link could not be sent: the SMTP server")
    assert "tries again after" in waiting.last_error
    assert timedelta(minutes=4) < waiting.next_attempt_at - utcnow() <= timedelta(minutes=5)
    assert actions(demo, reference)[-1] == "dsar.delivery_failed"
    with demo.session() as s:
        # Not before its backoff: an immediate run leaves it alone.
        assert plan_dsar_processing(s, demo.policy()).deliver == ()

    controller = Controller(inbox, hostname=inbox.host, port=port)
    controller.start()
    try:
        with demo.session() as s:
            later = process_dsar_requests(
                s, demo.datamap(), actor="cron", execute=True, now=utcnow() + timedelta(minutes=6)
            )
    finally:
        controller.stop()
    assert later.delivered == [reference] and len(inbox.messages) == 2
    done = row(demo, reference)
    assert done.status == "completed" and done.last_error is None


def test_retries_stop_after_max_attempts_and_support_can_still_send(
    demo: Deployment, smtp_inbox: Inbox
) -> None:
    closed = Inbox("127.0.0.1", free_port())
    demo.write_policy(
        mailing_to(closed, DEMO_POLICY).replace("max_attempts = 3", "max_attempts = 1")
    )
    reference = approved_access(demo, "45")
    assert demo.run("process-dsar-requests", "--execute").exit_code == 0
    given_up = row(demo, reference)
    assert (given_up.status, given_up.attempts, given_up.next_attempt_at) == ("ready", 1, None)
    assert given_up.last_error.endswith("press Send to subject to try again")
    with demo.session() as s:
        later = utcnow() + timedelta(days=1)
        assert plan_dsar_processing(s, demo.policy(), now=later).deliver == ()

    # Support presses Send while the server is still down: on the timeline, still ready.
    with demo.session() as s, pytest.raises(MailError):
        deliver_export(
            s, demo.policy(), reference, actor=SUPPORT_STAFF, download_url="http://x",
            execute=True,
        )  # fmt: skip
    failed = row(demo, reference)
    assert failed.status == "ready" and "could not be sent" in failed.last_error
    assert actions(demo, reference).count("dsar.delivery_failed") == 2

    demo.write_policy(mailing_to(smtp_inbox, DEMO_POLICY))
    with demo.session() as s:
        deliver_export(
            s, demo.policy(), reference, actor=SUPPORT_STAFF, download_url="http://x",
            execute=True,
        )  # fmt: skip
    assert row(demo, reference).status == "completed" and len(smtp_inbox.messages) == 2


def test_the_dry_run_counts_what_the_run_then_does(demo: Deployment, smtp_inbox: Inbox) -> None:
    demo.write_policy(mailing_to(smtp_inbox, DEMO_POLICY, auto_deliver=False))
    built = approved_access(demo, "46")  # built now: ready, sent by the next run
    with demo.session() as s:
        process_dsar_requests(s, demo.datamap(), actor="cron", execute=True)
    demo.write_policy(mailing_to(smtp_inbox, DEMO_POLICY))
    fresh = approved_access(demo, "47")

    dry = demo.run("--json", "process-dsar-requests")
    assert dry.exit_code == 0, dry.output
    plan = json.loads(dry.stdout)["plan"]
    assert (plan["claim"], plan["deliver"], plan["claim_access"]) == ([fresh], [built], [fresh])
    text = demo.run("process-dsar-requests").output
    assert "Would claim 1 approved requests" in text
    assert f"Would send the links of 1 ready exports: {built} and of the exports built now" in text

    out = json.loads(demo.run("--json", "process-dsar-requests", "--execute").stdout)
    assert out["claimed"] == len(plan["claim"])
    assert sorted(out["delivered"]) == sorted(plan["deliver"] + plan["claim_access"])
    assert sorted(out["completed"]) == sorted([built, fresh])
    assert len(smtp_inbox.messages) == 4


def test_a_ready_request_is_still_open_for_the_database_too(demo: Deployment) -> None:
    reference = approved_access(demo, "48")
    with demo.session() as s:
        process_dsar_requests(s, demo.datamap(), actor="cron", execute=True)
        again = submit_dsar(
            s, demo.policy(), demo.app_engine, kind="access", subject_id="48",
            requested_by=SUPPORT_STAFF, execute=True,
        )  # fmt: skip
        assert (again.reference, again.status) == (reference, "ready")
        copy = {c: getattr(again, c) for c in ("kind", "subject_id", "requested_by", "due_at")}
        # The partial unique index (migration 0010) covers ready: no second open request.
        s.add(DsarRequest(reference="DSAR-2026-999999", status="ready", **copy))
        with pytest.raises(IntegrityError):
            s.flush()
