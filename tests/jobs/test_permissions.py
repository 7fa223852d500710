"""Roles are checked in the library: a decision by someone without the role changes nothing.

The dashboard hides pages and buttons, but the rule lives in the decision functions, so the
command line, a forced dashboard session or a host application meet the same refusal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from click.testing import Result
from sqlalchemy import func, select

from compliance.deletion.batches import create_deletion_batches
from compliance.deletion.exclusions import exclude_records
from compliance.deletion.records import create_deletion_records
from compliance.deletion.review import review_batch
from compliance.dsar.api_keys import create_api_key, revoke_api_key
from compliance.dsar.decisions import extend_dsar, retry_dsar, review_dsar
from compliance.dsar.delivery import create_delivery
from compliance.dsar.downloads import open_export_for_download
from compliance.dsar.exports import export_user_data
from compliance.dsar.requests import get_dsar, submit
from compliance.errors import PermissionDenied
from compliance.policy.loader import load_policy
from compliance.reports.review_queue import list_batches
from compliance.roles import API_INTAKE, Identity, identify
from compliance.store.models import AuditEvent, DeletionBatch, DsarRequest
from compliance.systems.manual_tasks import confirm_task, retry_task
from tests.conftest import DEMO_POLICY, DPO, SUPPORT_STAFF, Deployment, person

MANAGER = person("ceo@example.com")
STRANGER = person("visitor@partner.org")  # no role at all
API_KEY = Identity(email="api:shop", roles=frozenset({API_INTAKE}), source="api")


def audit_count(d: Deployment) -> int:
    with d.session() as s:
        return s.scalar(select(func.count()).select_from(AuditEvent)) or 0


def logged(d: Deployment, subject_id: str = "7", by: Any = SUPPORT_STAFF) -> str:
    with d.session() as s:
        made = submit(
            s,
            d.policy(),
            d.app_engine,
            kind="access",
            subject_id=subject_id,
            requested_by=by,
            execute=True,
        )
    assert made.request.reference is not None
    return made.request.reference


def pending_batch(d: Deployment) -> int:
    datamap = d.datamap()
    with d.session() as s:
        create_deletion_records(s, datamap, "closed_accounts", actor="jobs", execute=True)
        create_deletion_batches(s, datamap.policy, "closed_accounts", actor="jobs", execute=True)
        return int(list_batches(s, status="pending", limit=1).frame["batch_id"].iloc[0])


def refused(result: Result, *words: str) -> str:
    """Exit 2 with one line saying who may not do what."""
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert "\n" not in line and "Traceback" not in result.output
    for word in words:
        assert word in line, line
    return line


# ---------------------------------------------------------------- the library


Setup = Callable[[Deployment], Any]
Decision = Callable[[Any, Deployment, Any, Any], object]
# name: (what the decision acts on, the decision (session, deployment, target, actor), who
# may not take it). MANAGER is support too in the demo's [roles] (a leading @ is a domain).
DECISIONS: dict[str, tuple[Setup, Decision, Any]] = {
    "review a batch": (
        pending_batch,
        lambda s, d, batch, who: review_batch(s, batch, "accept", reviewer=who, execute=True),
        SUPPORT_STAFF,
    ),
    "exclude records": (
        pending_batch,
        lambda s, d, batch, who: exclude_records(s, batch, {1: "note"}, actor=who),
        MANAGER,
    ),
    "review a DSAR": (
        logged,
        lambda s, d, ref, who: review_dsar(
            s, ref, "approve", reviewer=who, four_eyes=True, execute=True
        ),
        SUPPORT_STAFF,
    ),
    "an API key reviews a DSAR": (
        logged,
        lambda s, d, ref, who: review_dsar(
            s, ref, "approve", reviewer=who, four_eyes=False, execute=True
        ),
        API_KEY,
    ),
    "extend a DSAR": (
        logged,
        lambda s, d, ref, who: extend_dsar(
            s, ref, policy=d.policy(), months=1, reason="many systems", actor=who, execute=True
        ),
        SUPPORT_STAFF,
    ),
    "retry a DSAR": (
        logged,
        lambda s, d, ref, who: retry_dsar(s, ref, actor=who, execute=True),
        MANAGER,
    ),
    "submit a DSAR": (
        lambda d: None,
        lambda s, d, _, who: submit(
            s,
            d.policy(),
            d.app_engine,
            kind="erasure",
            subject_id="9",
            requested_by=who,
            execute=True,
        ),
        STRANGER,
    ),
    "deliver an export": (
        logged,
        lambda s, d, ref, who: create_delivery(
            s, ref, actor=who, download_url="http://x", policy=d.policy()
        ),
        STRANGER,
    ),
    "export a subject's data": (
        lambda d: None,
        lambda s, d, _, who: export_user_data(
            s, d.datamap(), "9", fmt="json", directory=d.dir / "user-exports", actor=who
        ),
        STRANGER,
    ),
    "download an export": (
        logged,
        lambda s, d, ref, who: open_export_for_download(s, d.policy(), ref, actor=who),
        STRANGER,
    ),
    # The third review found these four checked nowhere below the dashboard's page.
    "confirm a system task": (
        lambda d: None,
        lambda s, d, _, who: confirm_task(s, 1, actor=who, note="done by hand", execute=True),
        SUPPORT_STAFF,
    ),
    "retry a system task": (
        lambda d: None,
        lambda s, d, _, who: retry_task(s, 1, actor=who, execute=True),
        MANAGER,
    ),
    "create an API key": (
        lambda d: None,
        lambda s, d, _, who: create_api_key(s, "shop", actor=who, execute=True),
        SUPPORT_STAFF,
    ),
    "revoke an API key": (
        lambda d: None,
        lambda s, d, _, who: revoke_api_key(s, "shop", actor=who, execute=True),
        MANAGER,
    ),
}


def snapshot(d: Deployment) -> tuple[int, int, int, int]:
    """What any decision would change: requests and their states, batch reviews, events."""
    with d.session() as s:
        return (
            s.scalar(select(func.count()).select_from(DsarRequest)) or 0,
            s.scalar(select(func.count()).where(DsarRequest.status != "pending")) or 0,
            s.scalar(select(func.count()).where(DeletionBatch.reviewed_status != "pending")) or 0,
            s.scalar(select(func.count()).select_from(AuditEvent)) or 0,
        )


@pytest.mark.parametrize("name", DECISIONS)
def test_every_decision_refuses_someone_without_the_role_and_changes_nothing(
    demo: Deployment, name: str
) -> None:
    setup, decide, who = DECISIONS[name]
    target = setup(demo)
    before = snapshot(demo)
    with demo.session() as s, pytest.raises(PermissionDenied, match=f"^{who.email} may not "):
        decide(s, demo, target, who)
    assert snapshot(demo) == before


def test_a_bare_email_is_not_an_acting_person(demo: Deployment) -> None:
    with demo.session() as s, pytest.raises(TypeError, match="must be an Identity"):
        review_batch(s, pending_batch(demo), "accept", reviewer="dpo@example.com", execute=True)  # type: ignore[arg-type]


def test_roles_come_from_the_policy_so_removing_someone_takes_effect(demo: Deployment) -> None:
    demo.write_policy(
        DEMO_POLICY.replace(
            'compliance_officer = ["dpo@example.com"]', 'compliance_officer = ["new@example.com"]'
        )
    )
    former = identify(demo.policy(), "dpo@example.com")
    assert not former.has("compliance_officer")
    with demo.session() as s, pytest.raises(PermissionDenied):
        review_batch(s, pending_batch(demo), "accept", reviewer=former, execute=True)


# ---------------------------------------------------------------- four eyes


def test_with_four_eyes_an_officer_cannot_approve_a_request_they_logged(demo: Deployment) -> None:
    reference = logged(demo, by=DPO)
    with demo.session() as s, pytest.raises(PermissionDenied, match=r"four_eyes"):
        review_dsar(s, reference, "approve", reviewer=DPO, four_eyes=True, execute=True)
    colleague = person("dpo2@example.com", roles=("compliance_officer",))
    with demo.session() as s:
        assert get_dsar(s, reference).status == "pending"
        review_dsar(s, reference, "approve", reviewer=colleague, four_eyes=True, execute=True)
        assert get_dsar(s, reference).reviewed_by == "dpo2@example.com"


def test_four_eyes_still_lets_an_officer_reject_their_own_request(demo: Deployment) -> None:
    reference = logged(demo, by=DPO)
    with demo.session() as s:
        rejected = review_dsar(
            s,
            reference,
            "reject",
            reviewer=DPO,
            four_eyes=True,
            reason="logged by mistake",
            execute=True,
        )
    assert rejected.status == "rejected"


def test_four_eyes_is_on_by_default_outside_demo_mode_and_can_be_turned_off(
    deployment: Deployment,
) -> None:
    assert deployment.policy().review.four_eyes is False  # the shipped demo policy
    closed = DEMO_POLICY.replace("demo_mode = true", "demo_mode = false")
    deployment.write_policy(closed)
    assert deployment.policy().review.four_eyes is True
    deployment.write_policy(closed + "\n[review]\nfour_eyes = false\n")
    assert deployment.policy().review.four_eyes is False


def test_review_settings_are_checked_when_the_policy_loads(deployment: Deployment) -> None:
    from compliance.errors import ConfigError

    deployment.write_policy(DEMO_POLICY + '\n[review]\nfour_eyes = "yes"\n')
    with pytest.raises(ConfigError, match=r"review\.four_eyes: expected bool"):
        load_policy(deployment.policy_path, env={})
    deployment.write_policy(DEMO_POLICY + "\n[review]\nfoure_eyes = true\n")
    with pytest.raises(ConfigError, match=r"review\.foure_eyes: unknown key"):
        load_policy(deployment.policy_path, env={})


# ---------------------------------------------------------------- the command line


def test_the_cli_refuses_a_reviewer_who_is_not_a_compliance_officer(demo: Deployment) -> None:
    batch_id = pending_batch(demo)
    before = audit_count(demo)
    result = demo.run(
        "review-batch", str(batch_id), "--accept", "--reviewer", "support@example.com",
        "--execute",
    )  # fmt: skip
    refused(result, "support@example.com may not review deletion batches", "compliance officer")
    reference = logged(demo)
    result = demo.run(
        "review-dsar", reference, "--approve", "--reviewer", "ceo@example.com", "--execute"
    )
    refused(result, "ceo@example.com may not review DSAR requests")
    with demo.session() as s:
        assert s.get(DeletionBatch, batch_id).reviewed_status == "pending"
        assert get_dsar(s, reference).status == "pending"
        assert (
            s.scalar(
                select(func.count()).where(
                    AuditEvent.action.in_(["deletion_batch.accepted", "dsar.approved"])
                )
            )
            == 0
        )
    assert audit_count(demo) == before + 1  # only the request logged above


def test_the_cli_names_the_acting_person_for_extend_retry_and_deliver(demo: Deployment) -> None:
    reference = logged(demo)
    for command, extra in (
        ("extend-dsar", ["--months", "1", "--reason", "many systems"]),
        ("retry-dsar", []),
    ):
        refused(
            demo.run(command, reference, *extra, "--by", "support@example.com", "--execute"),
            "support@example.com may not",
        )
        missing = demo.run(command, reference, *extra, "--execute")
        assert missing.exit_code == 2 and "--by" in missing.stderr
    refused(
        demo.run("deliver-dsar", reference, "--by", "visitor@partner.org", "--execute"),
        "visitor@partner.org may not deliver DSAR exports",
    )
    refused(
        demo.run(
            "submit-dsar", "--kind", "access", "--subject-id", "3",
            "--requested-by", "visitor@partner.org", "--execute",
        ),
        "visitor@partner.org may not log DSAR requests",
    )  # fmt: skip
    out = demo.dir / "user-exports"
    refused(
        demo.run("export-user-data", "--subject-id", "3", "--by", "visitor@partner.org",
                 "--output", str(out)),
        "visitor@partner.org may not export a subject's data",
    )  # fmt: skip
    assert not out.exists() or not any(out.iterdir()), "nothing written for a stranger"
    missing = demo.run("export-user-data", "--subject-id", "3", "--output", str(out))
    assert missing.exit_code == 2 and "give --by EMAIL" in missing.stderr  # actor: test-runner
    assert not out.exists() or not any(out.iterdir())
    # As the contract's command line has it, with the person named by COMPLIANCE_ACTOR.
    taken = demo.run(
        "export-user-data", "--subject-id", "3", "--output", str(out),
        env={"COMPLIANCE_ACTOR": "support@example.com"},
    )  # fmt: skip
    assert taken.exit_code == 0, taken.output
    with demo.session() as s:
        actors = s.scalars(
            select(AuditEvent.actor).where(AuditEvent.action == "subject.exported")
        ).all()
    assert actors == ["support@example.com"]


def test_the_cli_enforces_four_eyes_when_the_policy_asks(demo: Deployment) -> None:
    demo.write_policy(DEMO_POLICY + "\n[review]\nfour_eyes = true\n")
    out = demo.run(
        "--json", "submit-dsar", "--kind", "access", "--subject-id", "4",
        "--requested-by", "dpo@example.com", "--execute",
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    reference = get_reference(out)
    line = refused(
        demo.run("review-dsar", reference, "--approve", "--reviewer", "dpo@example.com",
                 "--execute"),
        "dpo@example.com logged", "may not approve it too",
    )  # fmt: skip
    # The whole sentence: it once ended "another compliance officer must".
    assert line == (
        f"Error: dpo@example.com logged {reference} and may not approve it too "
        "([review] four_eyes): another compliance officer must approve it"
    )
    with demo.session() as s:
        assert get_dsar(s, reference).status == "pending"


def get_reference(result: Result) -> str:
    import json

    return str(json.loads(result.stdout)["reference"])
