"""The audit trail: every step names its actor, and tampering is found."""

from __future__ import annotations

import importlib.util
import itertools
import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Connection, select, text
from sqlalchemy.exc import DBAPIError

from compliance.audit.chain import GENESIS, record_event, verify_chain
from compliance.store.models import AuditEvent
from tests.conftest import ROOT, Deployment


def walk_bucket(d: Deployment) -> None:
    for args in (
        ["create-deletion-records", "--bucket", "closed_accounts", "--execute"],
        ["create-deletion-batches", "--bucket", "closed_accounts", "--execute"],
        ["review-batch", "1", "--accept", "--reviewer", "dpo@example.com", "--execute"],
        ["apply-deletions", "--execute"],
        ["purge-compliance-data", "--bucket", "closed_accounts", "--execute"],
    ):
        result = d.run(*args, env={"COMPLIANCE_ACTOR": "cron@worker-1"})
        assert result.exit_code == 0, result.output


def events(d: Deployment) -> list[AuditEvent]:
    with d.session() as s:
        return list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def test_every_step_leaves_an_event_naming_its_actor_and_counts(demo: Deployment) -> None:
    walk_bucket(demo)
    trail = events(demo)
    actions = [e.action for e in trail]
    assert actions[0] == "deletion_records.created"
    assert "deletion_batch.created" in actions
    assert "deletion_batch.accepted" in actions
    assert "deletion_records.applied" in actions
    assert actions[-1] == "compliance_data.purged"
    review = next(e for e in trail if e.action == "deletion_batch.accepted")
    assert review.actor == "dpo@example.com"
    assert review.target_type == "deletion_batch" and review.target_id == "1"
    assert {e.actor for e in trail if e is not review} == {"cron@worker-1"}
    applied = next(e for e in trail if e.action == "deletion_records.applied")
    assert applied.details["applied"] == review.details["accepted"]
    assert applied.details["rows"]["users"] == review.details["accepted"]


def test_audit_details_never_hold_a_subjects_email_or_name(demo: Deployment) -> None:
    walk_bucket(demo)
    trail = json.dumps([e.details for e in events(demo)])
    for user in demo.app_rows("users", "id <= 400"):
        if user["full_name"]:
            assert user["full_name"] not in trail
    assert "@example.org" not in trail


def test_the_chain_links_each_event_to_the_one_before(demo: Deployment) -> None:
    walk_bucket(demo)
    trail = events(demo)
    assert trail[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(trail))
    result = demo.run("verify-audit-log", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {
        "ok": True,
        "checked": len(trail),
        "broken_event_id": None,
        "problem": None,
        "anchor": None,
        "anchor_problem": None,
    }


def _sqlite_guard() -> list[str]:
    """The SQLite triggers as migration 0005 creates them (to put them back after a tamper)."""
    path = ROOT / "compliance" / "store" / "migrations" / "versions" / "0005_evidence.py"
    spec = importlib.util.spec_from_file_location("migration_0005_evidence", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.SQLITE_GUARD)


@contextmanager
def writable_audit_log(d: Deployment) -> Iterator[Connection]:
    """What someone with the database owner's rights can do: lift the append-only guard."""
    with d.engine.begin() as conn:
        if d.backend == "postgresql":
            conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        else:
            conn.execute(text("DROP TRIGGER audit_events_no_update"))
            conn.execute(text("DROP TRIGGER audit_events_no_delete"))
        yield conn
        if d.backend == "postgresql":
            conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))
        else:
            for statement in _sqlite_guard():
                conn.execute(text(statement))


def _tamper(d: Deployment, sql: str) -> None:
    with writable_audit_log(d) as conn:
        conn.execute(text(sql))


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        (
            "UPDATE audit_events SET actor = 'someone-else' WHERE id = 3",
            "event 3 was changed after it was written",
        ),
        (
            "DELETE FROM audit_events WHERE id = 3",
            "event 4 does not follow the event before it",
        ),
    ],
)
def test_verify_names_the_first_broken_link(demo: Deployment, sql: str, problem: str) -> None:
    walk_bucket(demo)
    _tamper(demo, sql)
    result = demo.run("verify-audit-log")
    assert result.exit_code == 1
    assert problem in result.output


def test_postgresql_refuses_to_change_or_remove_audit_events(demo: Deployment) -> None:
    if demo.backend != "postgresql":
        pytest.skip("TRUNCATE is PostgreSQL's; test_audit_anchor covers both databases")
    walk_bucket(demo)
    for sql in (
        "UPDATE audit_events SET actor = 'x'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
    ):
        with (
            pytest.raises(DBAPIError, match="audit_events is append-only"),
            demo.engine.begin() as conn,
        ):
            conn.execute(text(sql))
    assert len(events(demo)) > 0


def test_an_event_needs_an_actor(deployment: Deployment) -> None:
    from compliance.errors import InvalidInput

    with deployment.session() as s, pytest.raises(InvalidInput):
        record_event(s, actor=" ", action="x", target_type="y")
    with deployment.session() as s:
        record_event(s, actor="a@example.com", action="x", target_type="y", details={"n": 1})
        s.commit()
        assert verify_chain(s).ok


def test_an_apply_names_exactly_the_records_it_erased_never_a_range(demo: Deployment) -> None:
    from compliance.deletion.exclusions import exclude_records
    from compliance.store.models import DeletionRecord
    from tests.conftest import DPO

    for args in (
        ["create-deletion-records", "--bucket", "closed_accounts", "--execute"],
        ["create-deletion-batches", "--bucket", "closed_accounts", "--execute"],
    ):
        assert demo.run(*args).exit_code == 0
    with demo.session() as s:
        ids = list(
            s.scalars(
                select(DeletionRecord.id)
                .where(DeletionRecord.deletion_batch_id == 1)
                .order_by(DeletionRecord.id)
            )
        )
        assert len(ids) >= 3
        exclude_records(s, 1, {ids[1]: "Customer disputes an invoice"}, actor=DPO)
    for args in (
        ["review-batch", "1", "--accept", "--reviewer", "dpo@example.com", "--execute"],
        ["apply-deletions", "--execute"],
    ):
        assert demo.run(*args).exit_code == 0
    trail = events(demo)
    applied = [
        i for e in trail if e.action == "deletion_records.applied" for i in e.details["record_ids"]
    ]
    assert sorted(applied) == [i for i in ids if i != ids[1]]
    # Opening records is audited by count: no "[first, last]" that reads as a list of ids.
    opened = next(e for e in trail if e.action == "deletion_records.created")
    assert "profile_ids" not in opened.details and opened.details["created"] >= len(ids)
