"""Rectification (GDPR Art. 16): corrections reviewed by an officer, one audited UPDATE per
table as previewed, every other system told, the typed values kept out of the audit chain."""

from __future__ import annotations

from sqlalchemy import func, select, text

from compliance.audit.texts import REMOVED
from compliance.dsar.desk import request_detail
from compliance.store.models import AuditEvent, DsarCorrection, DsarRequest, FreeText, JobRun
from tests.conftest import DPO
from tests.desk_rights import IDENTITY, OFFICER, SUPPORT, Desk
from tests.desk_rights import desk as desk  # the fixture
from tests.smtp_server import smtp_inbox as smtp_inbox  # the fixture

NAME = "Ada Lovelace-Byron"
COMPANY = "Analytical Engines Ltd"
WORDS = "My postal address changed to 12 Elm Street, Leeds"


def billed_subject(desk: Desk) -> str:
    """A subject with rows in both SQL systems: users, and billing_customers."""
    with desk.d.billing_engine.connect() as conn:
        return str(conn.scalar(text("SELECT min(user_id) FROM billing_customers")))


def company(desk: Desk, subject: str) -> str:
    with desk.d.billing_engine.connect() as conn:
        row = conn.execute(
            text("SELECT company FROM billing_customers WHERE user_id = :s"), {"s": int(subject)}
        )
        return str(row.scalar())


def test_corrections_are_previewed_applied_as_previewed_and_told_to_every_system(
    desk: Desk,
) -> None:
    subject = billed_subject(desk)
    reference = desk.submit(
        "rectification", subject, *IDENTITY, "--correct", f"users.full_name={NAME}",
        "--correct", f"billing_customers.company = {COMPANY}", "--correction", WORDS,
    )  # fmt: skip
    assert desk.request(reference).status == "pending"
    assert "the correction of your personal data" in desk.notice(reference, "acknowledgement")

    dry = desk.ok("review-dsar", reference, "--approve", "--reviewer", OFFICER)
    preview = {c["table"]: (c["system"], c["columns"], c["rows"]) for c in dry["changes"]}
    assert preview == {
        "users": ("app_database", ["full_name"], 1),
        "billing_customers": ("billing", ["company"], 1),
    }
    assert dry["in_words"] == 1
    assert desk.d.app_rows("users", f"id = {subject}")[0]["full_name"] != NAME
    desk.approve(reference)

    assert desk.process().waiting == [reference]  # the newsletter and the words wait
    assert desk.d.app_rows("users", f"id = {subject}")[0]["full_name"] == NAME
    assert company(desk, subject) == COMPANY
    with desk.d.session() as s:
        applied = s.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "dsar.rectified", AuditEvent.target_id == reference
            )
        ).all()
    # The UPDATE that ran is the one previewed: same tables, columns and rows.
    assert {e.details["table"]: (e.details["system"], e.details["columns"], e.details["rows"])
            for e in applied} == preview  # fmt: skip
    (call,) = desk.calls(reference)
    assert call["kind"] == "rectification"
    assert call["changes"] == [
        {"table": "users", "column": "full_name", "value": NAME},
        {"table": "billing_customers", "column": "company", "value": COMPANY},
        {"text": WORDS},
    ]
    tasks = desk.tasks(reference)
    assert {n: (t.system_kind, t.status) for n, t in tasks.items()} == {
        "app_database": ("sql", "done"), "billing": ("sql", "done"),
        "helpdesk": ("webhook", "done"), "newsletter": ("manual", "pending"),
        "(free text)": ("manual", "pending"),
    }  # fmt: skip
    desk.confirm(reference, "newsletter")
    desk.confirm(reference, "(free text)")
    assert desk.process(later=True).completed == [reference]
    assert "We corrected your personal data" in desk.notice(reference, "completion")

    # The values are typed text: in free_texts, never in the chain; erased with the subject.
    audit = desk.audit_text()
    assert all(value not in audit for value in (NAME, COMPANY, WORDS)) and desk.chain_ok()
    with desk.d.session() as s:
        (logged,) = s.scalars(select(JobRun.arguments).where(JobRun.job == "submit-dsar"))
    assert logged["correct"] == [
        "users.full_name=[redacted]",
        "billing_customers.company=[redacted]",
    ]
    assert logged["correction"] == "[redacted]"
    desk.erase(subject)
    with desk.d.session() as s:
        shown = request_detail(s, desk.d.policy(), reference, roles=DPO.roles, viewer=OFFICER)
        bodies = " ".join(s.scalars(select(FreeText.body)))
    assert {c.value for c in shown.corrections} == {REMOVED}
    assert WORDS not in bodies and NAME not in bodies


REFUSED = [
    ("invoices.amount_cents=1", "'invoices.amount_cents' is kept under retain (Accounting law"),
    ("newsletter_subscribers.email=x", "'newsletter_subscribers.email' is not in the data map"),
    ("users.nickname=Ada", "'users.nickname': users has no column nickname"),
    ("workflows.user_id=3", "'workflows.user_id' links the subject's rows"),
    ("users.password_hash=x", "'users.password_hash' is internal or security data"),
    ("users.country=Germany", "'users.country' holds at most 2 characters"),
    ("users.full_name", "--correct must be TABLE.COLUMN=NEW VALUE, got 'users.full_name'"),
]  # fmt: skip


def test_a_correction_that_cannot_be_carried_out_is_refused_in_one_line_and_nothing_changes(
    desk: Desk,
) -> None:
    before = desk.d.app_rows("users", "id = 5")
    for correction, message in REFUSED:
        result = desk.run(
            "submit-dsar", "--kind", "rectification", "--subject-id", "5",
            "--requested-by", SUPPORT, "--correct", correction, "--execute",
        )  # fmt: skip
        assert result.exit_code == 2, result.output
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith(f"Error: {message}"), line
    with desk.d.session() as s:
        assert s.scalar(select(func.count()).select_from(DsarRequest)) == 0
        assert s.scalar(select(func.count()).select_from(DsarCorrection)) == 0
    assert desk.d.app_rows("users", "id = 5") == before
