"""The rights beyond access and erasure through the intake API (a real uvicorn on loopback):
logged with what each kind needs, and refused with one 422 line, changing nothing."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from compliance.store.models import DsarCorrection, DsarRequest, LegalHold
from tests.api.test_intake_api import IDENTITY, Server, api, new_key  # noqa: F401
from tests.api.test_intake_api import smtp_inbox as smtp_inbox  # the fixture
from tests.conftest import Deployment, ok

OFFICER = "dpo@example.com"


def counts(d: Deployment) -> tuple[int, int, int]:
    with d.session() as s:
        return (
            s.scalar(select(func.count()).select_from(DsarRequest)) or 0,
            s.scalar(select(func.count()).select_from(DsarCorrection)) or 0,
            s.scalar(select(func.count()).select_from(LegalHold)) or 0,
        )


def erase(d: Deployment, subject: str) -> None:
    logged = d.run("--json", "submit-dsar", "--kind", "erasure", "--subject-id", subject,
                   "--requested-by", "support@example.com", "--execute")  # fmt: skip
    ok(logged)
    reference = json.loads(logged.stdout)["reference"]
    ok(d.run("review-dsar", reference, "--approve", "--reviewer", OFFICER, "--execute"))
    ok(d.run("process-dsar-requests", "--execute"))
    ok(d.run("apply-deletions", "--execute"))
    ok(d.run("process-dsar-requests", "--execute"))


def test_each_kind_is_logged_over_http_and_bad_input_is_one_422_line(
    demo: Deployment,
    api: Server,  # noqa: F811
) -> None:
    key = new_key(demo)
    objection = api.post(key, {"kind": "objection", "subject_id": "21", "scope":
                               "direct_marketing", "identity_check": IDENTITY})  # fmt: skip
    assert objection.status_code == 201, objection.text
    assert objection.json()["status"] == "approved"  # accepted at once (Art. 21(3))
    restriction = api.post(key, {"kind": "restriction", "subject_id": "22",
                                 "identity_check": IDENTITY})  # fmt: skip
    assert restriction.status_code == 201 and restriction.json()["status"] == "pending"
    body = {
        "kind": "rectification", "subject_id": "23", "identity_check": IDENTITY,
        "corrections": [{"column": "users.full_name", "value": "Grace Hopper"},
                        {"value": "my phone number is wrong too"}],
    }  # fmt: skip
    corrected = api.post(key, body)
    assert corrected.status_code == 201, corrected.text
    with demo.session() as s:
        assert s.scalar(select(func.count()).select_from(DsarCorrection)) == 2
    portable = api.post(key, {"kind": "portability", "subject_id": "26", "jurisdiction": "gdpr",
                              "identity_check": IDENTITY})  # fmt: skip
    assert portable.status_code == 201, portable.text
    assert (portable.json()["kind"], portable.json()["jurisdiction"]) == ("portability", "gdpr")

    erase(demo, "24")
    before = counts(demo)
    for sent, detail in [
        ({"kind": "complaint", "subject_id": "25"}, "kind must be one of access, erasure, "),
        ({"kind": "objection", "subject_id": "25"}, "an objection needs a scope: one of "),
        ({"kind": "rectification", "subject_id": "25",
          "corrections": [{"column": "invoices.amount_cents", "value": "0"}]},
         "'invoices.amount_cents' is kept under retain"),
        ({"kind": "rectification", "subject_id": "25",
          "corrections": [{"column": "unmapped.x", "value": "0"}]},
         "'unmapped.x' is not in the data map"),
        ({"kind": "restriction", "subject_id": "24"},
         "subject 24 was already erased (erasure request DSAR-"),
    ]:  # fmt: skip
        answer = api.post(key, {**sent, "identity_check": IDENTITY})
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"].startswith(detail), answer.text
        assert "\n" not in answer.json()["detail"]
    assert counts(demo) == before


def test_an_unknown_kind_on_the_command_line_is_one_line_exit_2_and_changes_nothing(
    demo: Deployment,
) -> None:
    before = counts(demo)
    refused = demo.run("submit-dsar", "--kind", "complaint", "--subject-id", "25",
                       "--requested-by", "support@example.com", "--execute")  # fmt: skip
    assert refused.exit_code == 2, refused.output
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "complaint" in lines[0] and "rectification" in lines[0], lines
    assert counts(demo) == before
