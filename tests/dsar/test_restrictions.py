"""Restriction of processing (GDPR Art. 18): a hold on the subject, systems told, lifted only
after the subject was told."""

from __future__ import annotations

from sqlalchemy import func, select

from compliance.store.models import DsarRequest, ErasureTask, LegalHold
from compliance.systems.manual_tasks import confirm_task
from tests.conftest import DPO
from tests.desk_rights import IDENTITY, OFFICER, SUPPORT, Desk
from tests.desk_rights import desk as desk  # the fixture
from tests.smtp_server import smtp_inbox as smtp_inbox  # the fixture


def restriction(desk: Desk) -> LegalHold:
    with desk.d.session() as s:
        return s.scalars(select(LegalHold).where(LegalHold.kind == "restriction")).one()


def test_a_restriction_holds_the_subject_until_an_officer_lifts_it_after_telling_them(
    desk: Desk,
) -> None:
    reference = desk.submit("restriction", "42", *IDENTITY)
    assert desk.request(reference).status == "pending"
    assert "the restriction of the processing" in desk.notice(reference, "acknowledgement")
    desk.approve(reference)

    assert desk.process().waiting == [reference]
    hold = restriction(desk)
    assert (hold.dsar_request_id, hold.lifted_at, hold.placed_by) == (
        desk.request(reference).id, None, OFFICER,
    )  # fmt: skip
    (call,) = desk.calls(reference)
    assert call["kind"] == "restriction"
    assert call["restriction"] == {"start": hold.placed_at.isoformat(), "end": None}
    desk.confirm(reference)
    assert desk.process(later=True).completed == [reference]
    assert "We will tell you before we lift the restriction" in desk.notice(reference, "completion")

    # While it lasts, an approved erasure waits, and the legal-hold command cannot lift it.
    erasure = desk.submit("erasure", "42")
    desk.approve(erasure)
    desk.process()
    assert desk.request(erasure).last_error == (
        f"on restriction of processing (hold {hold.id}): the erasure waits until the hold is lifted"
    )
    refused = desk.run("hold", "remove", str(hold.id), "--reason", "done", "--by", OFFICER,
                       "--execute")  # fmt: skip
    assert refused.exit_code == 2 and "lift-restriction" in refused.stderr
    assert restriction(desk).lifted_at is None

    dry = desk.run("lift-restriction", reference, "--reason", "The dispute is settled",
                   "--by", OFFICER)  # fmt: skip
    assert f"[DRY RUN] Would tell the subject, then lift the restriction of {reference}" in (
        dry.output
    )
    assert restriction(desk).lifted_at is None and len(desk.inbox.messages) == 2
    desk.ok("lift-restriction", reference, "--reason", "The dispute is settled", "--by", OFFICER,
            "--execute")  # fmt: skip
    told = desk.inbox.messages[-1]
    assert told["Subject"] == f"Your restriction of processing ends ({reference})"
    assert "The dispute is settled" in told.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    lifted = restriction(desk)
    assert lifted.lifted_by == OFFICER and lifted.lifted_reason == "The dispute is settled"
    # Every system told the start is told the end.
    start, end = (c["restriction"] for c in desk.calls(reference))
    assert start["end"] is None and call["kind"] == "restriction"
    assert end == {"start": hold.placed_at.isoformat(), "end": lifted.lifted_at.isoformat()}
    with desk.d.session() as s:
        ending = s.scalars(select(ErasureTask).where(ErasureTask.action == "restriction_end")).all()
    assert {t.system: t.status for t in ending} == {"helpdesk": "done", "newsletter": "pending"}
    (newsletter,) = [t for t in ending if t.system == "newsletter"]
    with desk.d.session() as s:
        confirm_task(s, newsletter.id, actor=DPO, note="Resumed in the tool", execute=True)
    assert desk.request(reference).status == "completed"
    assert desk.timeline(reference)[-2:] == ["dsar.notice_sent", "dsar.restriction_lifted"]
    assert "dispute" not in desk.audit_text() and desk.chain_ok()

    # Lifted: the waiting erasure goes through once its claim's lease has run out.
    assert desk.process(minutes=31).erasure_scheduled == 1
    desk.apply(minutes=31)
    desk.erase_manual_steps()
    assert erasure in desk.process(minutes=31).completed


def test_a_restriction_is_not_lifted_while_the_subject_cannot_be_told(desk: Desk) -> None:
    reference = desk.submit("restriction", "42", *IDENTITY)
    desk.approve(reference)
    desk.process()
    desk.d.write_policy(desk.d.policy_path.read_text().replace(
        f"port = {desk.inbox.port}", "port = 9"  # nothing listens there
    ))  # fmt: skip
    result = desk.run("lift-restriction", reference, "--reason", "settled", "--by", OFFICER,
                      "--execute")  # fmt: skip
    assert result.exit_code == 2
    error = result.stderr.strip().splitlines()[-1]  # after the log line of the failed notice
    assert error.startswith(f"Error: the subject of {reference} could not be told (")
    assert "the restriction stays in force" in error
    assert restriction(desk).lifted_at is None
    (notice,) = [n for n in desk.ok("show-request", reference)["notices"]]
    assert (notice["kind"], notice["status"]) == ("restriction_lift", "failed")


def test_a_restriction_of_a_subject_already_erased_is_refused_and_nothing_is_logged(
    desk: Desk,
) -> None:
    erasure = desk.erase("43")
    with desk.d.session() as s:
        before = s.scalar(select(func.count()).select_from(DsarRequest))
    result = desk.run("submit-dsar", "--kind", "restriction", "--subject-id", "43",
                      "--requested-by", SUPPORT, *IDENTITY, "--execute")  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"Error: subject 43 was already erased (erasure request {erasure}): there is nothing "
        "left to restrict (--subject-id)"
    ]
    with desk.d.session() as s:
        assert s.scalar(select(func.count()).select_from(DsarRequest)) == before
        assert s.scalar(select(func.count()).select_from(LegalHold)) == 0
