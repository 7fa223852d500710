"""Objections (GDPR Art. 21): a suppression every system is told about, kept after erasure."""

from __future__ import annotations

import csv
import io

from sqlalchemy import func, select

from compliance.audit.subject_keys import hashed_key, key_secret
from compliance.dsar.decisions import review_dsar
from compliance.dsar.objections import is_suppressed
from compliance.errors import Conflict
from compliance.reports.dsar_stats import dsar_overview
from compliance.store.models import DsarRequest, Suppression
from tests.conftest import DPO, person
from tests.desk_rights import IDENTITY, OFFICER, SUPPORT, Desk
from tests.desk_rights import desk as desk  # the fixture
from tests.smtp_server import smtp_inbox as smtp_inbox  # the fixture

SECOND_OFFICER = person("dpo2@example.com", roles=("compliance_officer",))


def suppressions(desk: Desk) -> int:
    with desk.d.session() as s:
        return s.scalar(select(func.count()).select_from(Suppression)) or 0


def test_an_objection_to_direct_marketing_is_accepted_told_to_every_system_and_outlives_erasure(
    desk: Desk,
) -> None:
    email = desk.d.app_rows("users", "id = 42")[0]["email"]
    reference = desk.submit("objection", "42", "--scope", "direct_marketing", *IDENTITY)
    # Art. 21(3): accepted on a checked identity, without waiting for an officer.
    assert desk.request(reference).status == "approved"
    refused = desk.run("review-dsar", reference, "--reject", "--reviewer", OFFICER,
                       "--reason", "we like sending mail", "--execute")  # fmt: skip
    assert refused.exit_code == 2
    assert refused.stderr.strip().splitlines() == [
        f"Error: {reference} is already approved; not reviewed again"
    ]
    assert desk.request(reference).status == "approved"
    assert desk.notice(reference, "acknowledgement").startswith(
        f"We received your request ({reference})\n"
    )

    first = desk.process()
    assert first.waiting == [reference]  # the newsletter is a person's step
    assert suppressions(desk) == 1
    (call,) = desk.calls(reference)
    assert (call["kind"], call["scope"], call["subject"]) == (
        "objection", "direct_marketing", {"id": "42", "email": email},
    )  # fmt: skip
    tasks = desk.tasks(reference)
    assert {n: (t.action, t.status) for n, t in tasks.items()} == {
        "helpdesk": ("objection", "done"), "newsletter": ("objection", "pending"),
    }  # fmt: skip

    desk.confirm(reference)
    assert desk.process(later=True).completed == [reference]
    done = desk.request(reference)
    assert done.status == "completed" and done.completed_at is not None
    completion = desk.notice(reference, "completion")
    assert "no longer use your personal data for direct marketing" in completion
    assert desk.timeline(reference)[:3] == [
        "dsar.submitted", "dsar.accepted_by_law", "dsar.notice_sent",
    ]  # fmt: skip
    assert {"dsar.suppression_recorded", "dsar.completed"} <= set(desk.timeline(reference))

    # The subject is erased; the suppression stays, and finds their address imported again.
    desk.erase("42")
    assert desk.d.app_rows("users", "id = 42")[0]["email"] != email
    listed = desk.ok("suppression", "list", "--email", email.upper(),
                     "--csv", str(desk.d.dir / "suppressions.csv"))  # fmt: skip
    (row,) = listed["suppressions"]
    secret = key_secret(desk.d.policy())  # once erased, the key is kept only as its hash
    assert secret is not None
    assert (row["subject_id"], row["scope"], row["reference"]) == (
        hashed_key("42", secret), "direct_marketing", reference,
    )  # fmt: skip
    text = (desk.d.dir / "suppressions.csv").read_text()
    (line,) = csv.DictReader(io.StringIO(text))
    assert line["email_hash"].startswith("hmac-sha256:") and email not in text
    with desk.d.session() as s:
        assert is_suppressed(s, desk.d.policy(), email=email, scope="direct_marketing")
        assert not is_suppressed(s, desk.d.policy(), email=email, scope="profiling")
    assert email not in desk.audit_text() and desk.chain_ok()
    with desk.d.session() as s:  # on Progress like any request: both completed, on time
        overview = dsar_overview(s)
    assert (overview.completed_count, overview.on_time_rate) == (2, 1.0)
    desk.ok("purge-compliance-data", "--bucket", "dsar_erasure", "--execute")
    assert suppressions(desk) == 1


def test_any_other_objection_is_weighed_by_an_officer_and_may_be_rejected(desk: Desk) -> None:
    direct = desk.submit("objection", "7", "--scope", "direct_marketing")  # no identity check
    weighed = desk.submit("objection", "8", "--scope", "legitimate_interests", *IDENTITY)
    assert [desk.request(r).status for r in (direct, weighed)] == ["pending", "pending"]
    with desk.d.session() as s, s.begin():
        try:
            review_dsar(s, direct, "reject", reviewer=DPO, four_eyes=True, reason="no",
                        execute=True)  # fmt: skip
        except Conflict as exc:
            assert "cannot be rejected (GDPR Art. 21(3)" in str(exc)
        else:
            raise AssertionError("a direct-marketing objection was rejected")
    desk.ok("review-dsar", weighed, "--reject", "--reviewer", OFFICER,
            "--reason", "compelling legitimate grounds: fraud prevention", "--execute")  # fmt: skip
    assert "right to lodge a complaint" in desk.notice(weighed, "refusal")
    desk.approve(direct)  # the officer checked the identity; the objection is then carried out
    desk.process()
    desk.confirm(direct)
    assert desk.process(later=True).completed == [direct]
    assert suppressions(desk) == 1  # the rejected one left none


def test_an_objection_needs_a_known_scope_and_nothing_is_logged_without_one(desk: Desk) -> None:
    for args, message in [
        ((), "Error: an objection needs a --scope: one of direct_marketing, profiling, "
             "legitimate_interests"),
        (("--scope", "spam"), "Error: --scope must be one of direct_marketing, profiling, "
                              "legitimate_interests, got 'spam'"),
    ]:  # fmt: skip
        result = desk.run("submit-dsar", "--kind", "objection", "--subject-id", "9",
                          "--requested-by", SUPPORT, *args, "--execute")  # fmt: skip
        assert result.exit_code == 2 and result.stderr.strip().splitlines() == [message]
    access = desk.run("submit-dsar", "--kind", "access", "--subject-id", "9", "--scope",
                      "profiling", "--requested-by", SUPPORT, "--execute")  # fmt: skip
    assert access.exit_code == 2
    assert access.stderr.strip() == "Error: only an objection has a --scope, not access"
    with desk.d.session() as s:
        assert s.scalar(select(func.count()).select_from(DsarRequest)) == 0
