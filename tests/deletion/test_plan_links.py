"""The accepted plan is the whole plan: how each table finds the subject is part of it.

Issue 25: a batch was accepted, then ``[tables.workflows] subject_column = "id"``, and
apply-deletions deleted the workflows (with their runs and logs) of users who were not in
the batch, exit 0. Every part of a table's link to the subject (its ``subject_column``,
each ``via`` hop's table and column, its system) and the subject definition (``[subjects]``
table and key) is now accepted with the plan; any difference refuses the records, naming it.
"""

from __future__ import annotations

import json
from datetime import date

import pytest
from sqlalchemy import select, text, update

from compliance.deletion.plans import plan_hash
from compliance.store.models import AuditEvent, DeletionBatch, DeletionRecord, ErasurePlan
from tests.conftest import DEMO_POLICY, Deployment, ok, ok_stdout
from tests.deletion.test_accepted_plan import BUCKET, accepted_batch

APP_TABLES = (
    "users", "workflows", "workflow_runs", "workflow_logs", "api_tokens", "activity_logs",
    "support_tickets", "invoices", "payments",
)  # fmt: skip
BILLING_TABLES = ("billing_customers", "billing_notes")

BILLING_AGAIN = (
    '[systems.billing2]\nkind = "sql"\nurl = "sqlite:///var/demo_billing.db"\n'
    'description = "The same billing database, declared a second time"\n\n'
)


def changed(old: str, new: str, *, prepend: str = "") -> str:
    assert old in DEMO_POLICY, old
    return prepend + DEMO_POLICY.replace(old, new)


#: (what changes after acceptance, the policy it makes, the error naming it)
CHANGES = [
    (
        "subject_column",
        changed(
            '[tables.workflows]\nsubject_column = "user_id"',
            '[tables.workflows]\nsubject_column = "id"',
        ),
        "tables.workflows.subject_column changed after acceptance: user_id → id",
    ),
    (
        "via hop column",
        changed(
            'via = { table = "workflows", column = "workflow_id" }',
            'via = { table = "workflows", column = "id" }',
        ),
        "tables.workflow_runs.via.column changed after acceptance: workflow_id → id",
    ),
    (
        "via hop table",
        changed(
            'via = { table = "workflow_runs", column = "workflow_run_id" }',
            'via = { table = "workflows", column = "workflow_run_id" }',
        ),
        "tables.workflow_logs.via.table changed after acceptance: workflow_runs → workflows",
    ),
    (
        "system",
        changed(
            '[tables.billing_customers]\nsystem = "billing"',
            '[tables.billing_customers]\nsystem = "billing2"',
            prepend=BILLING_AGAIN,
        ).replace(
            '[tables.billing_notes]\nsystem = "billing"',
            '[tables.billing_notes]\nsystem = "billing2"',
        ),
        "tables.billing_customers.system changed after acceptance: billing → billing2",
    ),
    (
        "subjects key",
        changed('table = "users"\nkey = "id"', 'table = "users"\nkey = "legacy_id"').replace(
            '[tables.users]\nsubject_column = "id"', '[tables.users]\nsubject_column = "legacy_id"'
        ),
        "subjects.key changed after acceptance: id → legacy_id",
    ),
    (
        "subjects table",
        changed(
            'table = "users"\nkey = "id"\nemail = "email"',
            'table = "api_tokens"\nkey = "user_id"\nemail = "token_hash"',
        )
        .replace('review_columns = ["plan", "closed_at"]', "")
        .replace('review_columns = ["plan", "country"]', ""),
        "subjects.table changed after acceptance: users → api_tokens",
    ),
]


#: What the application database gains before a change: a second whole-number key for the
#: subjects (email would be refused at load: the other tables link by a number).
PREPARE = {
    "subjects key": (
        "ALTER TABLE users ADD COLUMN legacy_id INTEGER",
        "UPDATE users SET legacy_id = id",
    ),
}


def everything(d: Deployment) -> tuple[str, str]:
    return d.checksum(*APP_TABLES), d.checksum(*BILLING_TABLES)


@pytest.mark.parametrize(("part", "policy", "error"), CHANGES, ids=[c[0] for c in CHANGES])
def test_a_link_changed_after_acceptance_erases_nothing_and_names_the_change(
    demo: Deployment, part: str, policy: str, error: str
) -> None:
    batch_id = accepted_batch(demo)
    with demo.app_engine.begin() as conn:
        for statement in PREPARE.get(part, ()):
            conn.execute(text(statement))
    before = everything(demo)
    demo.write_policy(policy)  # someone changes how subjects are found after acceptance

    dry = demo.run("apply-deletions", "--bucket", BUCKET)
    result = demo.run("apply-deletions", "--bucket", BUCKET, "--execute")

    assert dry.exit_code == 1, dry.output
    assert result.exit_code == 1, result.output
    assert error in result.output and "; re-review" in result.output
    assert "refused: the policy widened or changed after their batch was accepted" in (
        result.output
    )
    assert everything(demo) == before
    with demo.session() as s:
        records = list(s.scalars(select(DeletionRecord).filter_by(deletion_batch_id=batch_id)))
    assert records and all(r.deletion_applied_at is None for r in records)
    assert all(error in (r.deletion_error or "") for r in records)

    demo.write_policy(DEMO_POLICY)  # back to what was accepted: the batch applies
    ok(demo.run("apply-deletions", "--bucket", BUCKET, "--execute"))
    assert everything(demo) != before


def test_the_accepted_plan_records_each_link_and_the_subject(demo: Deployment) -> None:
    batch_id = accepted_batch(demo)
    with demo.session() as s:
        digest = s.get(DeletionBatch, batch_id).accepted_plan_hash  # type: ignore[union-attr]
        plan = s.get(ErasurePlan, digest).plan  # type: ignore[union-attr]
    assert plan["subjects"] == {"table": "users", "key": "id"}
    assert plan["links"]["workflows"] == {"system": "app_database", "subject_column": "user_id"}
    assert plan["links"]["workflow_logs"] == {
        "system": "app_database",
        "via": {"table": "workflow_runs", "column": "workflow_run_id", "parent_column": None},
    }
    assert plan["links"]["billing_notes"]["system"] == "billing"


def test_replay_refuses_a_plan_whose_links_changed(demo: Deployment) -> None:
    accepted_batch(demo)
    ok(demo.run("apply-deletions", "--bucket", BUCKET, "--execute"))
    before = everything(demo)
    policy, error = CHANGES[0][1], CHANGES[0][2]
    demo.write_policy(policy)
    since = date.today().isoformat()

    dry = demo.run("replay-erasures", "--since", since)
    result = demo.run("replay-erasures", "--since", since, "--execute")

    assert dry.exit_code == 1, dry.output
    assert result.exit_code == 1, result.output
    assert error in result.output
    assert everything(demo) == before
    with demo.session() as s:
        refused = s.scalar(select(AuditEvent).filter_by(action="erasures.replay_refused"))
    assert refused is not None and error in refused.details["error"]


def test_a_plan_accepted_before_links_were_kept_gets_the_links_in_force_at_upgrade(
    demo: Deployment,
) -> None:
    batch_id = accepted_batch(demo)
    with demo.session() as s:  # as a batch accepted before this change left it
        batch = s.get(DeletionBatch, batch_id)
        assert batch is not None
        steps = s.get(ErasurePlan, batch.accepted_plan_hash).plan["steps"]  # type: ignore[union-attr]
        old_hash = plan_hash(steps)
        s.add(ErasurePlan(hash=old_hash, plan=steps, links_hash=None))
        s.flush()
        s.execute(
            update(DeletionBatch)
            .where(DeletionBatch.id == batch_id)
            .values(accepted_plan_hash=old_hash)
        )
        s.commit()

    out = ok_stdout(demo.run("--json", "init-db"))  # the upgrade records the links in force

    assert json.loads(out)["plans_linked"] == 1
    with demo.session() as s:
        old = s.get(ErasurePlan, old_hash)
        assert old is not None and old.plan == steps  # the evidence stays as it was
        linked = s.get(ErasurePlan, old.links_hash)
        assert linked is not None and linked.plan["links_recorded_after_acceptance"] is True
        assert linked.plan["links"]["workflows"]["subject_column"] == "user_id"
        event = s.scalar(select(AuditEvent).filter_by(action="plans.links_recorded"))
        assert event is not None
        assert event.details["plans"] == {old_hash: old.links_hash}
        assert event.details["batch_ids"] == [batch_id]
    ok(demo.run("init-db"))  # recorded once
    with demo.session() as s:
        events = s.scalars(select(AuditEvent).filter_by(action="plans.links_recorded")).all()
    assert len(events) == 1

    before = everything(demo)
    demo.write_policy(CHANGES[0][1])
    result = demo.run("apply-deletions", "--bucket", BUCKET, "--execute")
    assert result.exit_code == 1, result.output
    assert CHANGES[0][2] in result.output
    assert everything(demo) == before


def test_an_upgrade_without_init_db_is_completed_by_the_first_apply(demo: Deployment) -> None:
    batch_id = accepted_batch(demo)
    with demo.session() as s:
        batch = s.get(DeletionBatch, batch_id)
        assert batch is not None
        steps = s.get(ErasurePlan, batch.accepted_plan_hash).plan["steps"]  # type: ignore[union-attr]
        old_hash = plan_hash(steps)
        s.add(ErasurePlan(hash=old_hash, plan=steps, links_hash=None))
        s.flush()
        batch.accepted_plan_hash = old_hash
        s.commit()

    ok(demo.run("apply-deletions", "--bucket", BUCKET, "--execute"))

    with demo.session() as s:
        event = s.scalar(select(AuditEvent).filter_by(action="plans.links_recorded"))
        assert event is not None and event.details["batch_ids"] == [batch_id]
        applied = s.scalars(select(DeletionRecord).filter_by(deletion_batch_id=batch_id)).all()
    assert applied and all(r.deletion_applied_at is not None for r in applied)
