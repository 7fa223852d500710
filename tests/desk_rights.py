"""A deployment for the rights beyond access and erasure (issue 27): a helpdesk webhook on a
loopback port, the demo's manual newsletter step and a local mail server, all reached by
requests; plus the steps every request goes through, on the command line and in the library."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import select

from compliance.audit.chain import verify_chain
from compliance.deletion.apply import apply_deletions
from compliance.dsar.notices import send_notice
from compliance.dsar.processing import ProcessResult, process_dsar_requests
from compliance.store.models import AuditEvent, DsarRequest, ErasureTask, utcnow
from compliance.systems.manual_tasks import (
    ManualTaskFilter,
    confirm_task,
    confirm_tasks,
    manual_task_ids,
)
from tests.conftest import (
    DEMO_POLICY,
    DPO,
    SUPPORT_STAFF,
    Backend,
    Deployment,
    fill_demo,
    make_deployment,
)
from tests.smtp_server import Inbox, mailing_to
from tests.webhook_server import Service, webhook_service

SECRET = "test-helpdesk-secret"
OFFICER = DPO.email
SUPPORT = SUPPORT_STAFF.email
IDENTITY = ("--identity-method", "id_document", "--identity-check", "Passport seen by Ann")


def rights_policy(service: Service, inbox: Inbox, body: str = DEMO_POLICY) -> str:
    """Requests reach the helpdesk (a webhook) and the newsletter (a manual step); mail goes
    to ``inbox``."""
    reaching = body.replace("systems = []  ", 'systems = ["helpdesk", "newsletter"]  ', 1)
    assert reaching != body
    return mailing_to(inbox, reaching, auto_deliver=False) + (
        f'\n[systems.helpdesk]\nkind = "webhook"\nurl = "{service.url}/done"\n'
        'secret_env = "HELPDESK_SECRET"\n'
    )


@dataclass
class Desk:
    """One deployment with its helpdesk and mail server, and the steps a request goes through."""

    d: Deployment
    service: Service
    inbox: Inbox

    def run(self, *args: str) -> Result:
        return self.d.run(*args)

    def ok(self, *args: str) -> dict:  # type: ignore[type-arg]
        result = self.d.run("--json", *args)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)  # type: ignore[no-any-return]

    def submit(self, kind: str, subject: str, *more: str) -> str:
        out = self.ok(
            "submit-dsar", "--kind", kind, "--subject-id", subject, "--requested-by", SUPPORT,
            *more, "--execute",
        )  # fmt: skip
        return str(out["reference"])

    def approve(self, reference: str) -> None:
        self.ok("review-dsar", reference, "--approve", "--reviewer", OFFICER, "--execute")

    def process(self, *, later: bool = False, minutes: int = 0) -> ProcessResult:
        """One process-dsar-requests run; ``later``: after the settle lease, as cron's next
        (``minutes``: that much later)."""
        now = utcnow() + timedelta(minutes=minutes or (2 if later else 0))
        with self.d.session() as s:
            return process_dsar_requests(s, self.d.datamap(), actor="cron", execute=True, now=now)

    def apply(self, *, minutes: int = 0) -> None:
        """One apply-deletions run, ``minutes`` from now."""
        with self.d.session() as s:
            apply_deletions(
                s, self.d.datamap(), actor="cron", execute=True,
                now=utcnow() + timedelta(minutes=minutes),
            )  # fmt: skip

    def request(self, reference: str) -> DsarRequest:
        with self.d.session() as s:
            return s.scalars(select(DsarRequest).where(DsarRequest.reference == reference)).one()

    def tasks(self, reference: str) -> dict[str, ErasureTask]:
        with self.d.session() as s:
            rows = s.scalars(
                select(ErasureTask)
                .join(DsarRequest, DsarRequest.id == ErasureTask.dsar_request_id)
                .where(DsarRequest.reference == reference, ErasureTask.action == DsarRequest.kind)
            )
            return {t.system: t for t in rows}

    def confirm(self, reference: str, system: str = "newsletter") -> None:
        task = self.tasks(reference)[system]
        with self.d.session() as s:
            confirm_task(s, task.id, actor=DPO, note="Done in the tool", execute=True)

    def erase(self, subject: str) -> str:
        """The subject erased through an erasure request, every system included."""
        reference = self.submit("erasure", subject)
        self.approve(reference)
        self.process()
        self.ok("apply-deletions", "--execute")  # the SQL systems and the helpdesk
        self.erase_manual_steps()
        assert reference in self.process().completed
        return reference

    def erase_manual_steps(self) -> None:
        """A person confirms every manual erasure task (the newsletter's)."""
        with self.d.session() as s:
            waiting = manual_task_ids(s, ManualTaskFilter(action="erasure"))
            confirm_tasks(s, waiting, actor=DPO, note="Deleted in the tool", execute=True)

    def calls(self, reference: str) -> list[dict]:  # type: ignore[type-arg]
        return [c.body for c in self.service.calls if c.body and c.body["reference"] == reference]

    def notice(self, reference: str, kind: str) -> str:
        """Send the notice from the desk; what the subject's mailbox received (subject line
        and plain text)."""
        before = len(self.inbox.messages)
        with self.d.session() as s:
            result = send_notice(s, self.d.policy(), reference, kind, actor=SUPPORT_STAFF)
        assert result.status == "sent", result.error
        (message,) = self.inbox.messages[before:]
        body = message.get_body(("plain",))
        assert isinstance(body, EmailMessage)
        return f"{message['Subject']}\n{body.get_content()}"

    def timeline(self, reference: str) -> list[str]:
        with self.d.session() as s:
            return list(
                s.scalars(
                    select(AuditEvent.action)
                    .where(AuditEvent.target_id == reference)
                    .order_by(AuditEvent.id)
                )
            )

    def chain_ok(self) -> bool:
        with self.d.session() as s:
            return verify_chain(s).ok

    def audit_text(self) -> str:
        """Every audit event's details, as text: what must never hold typed personal data."""
        with self.d.session() as s:
            return json.dumps([e.details for e in s.scalars(select(AuditEvent))])


@pytest.fixture
def desk(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smtp_inbox: Inbox
) -> Iterator[Desk]:
    monkeypatch.setenv("HELPDESK_SECRET", SECRET)
    d = make_deployment(backend, tmp_path / "deploy")
    fill_demo(d, users_count=60, seed=5)
    with webhook_service(SECRET.encode()) as service:
        d.write_policy(rights_policy(service, smtp_inbox))
        yield Desk(d, service, smtp_inbox)
    d.dispose()
