"""Anchors: the chain's head kept outside the database, so cutting or rewriting the log shows.

Each tamper case is what the security review did: delete the newest events, delete every
event, or edit one event and recompute the whole chain so it verifies again.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from compliance.audit.chain import GENESIS, _canonical, compute_hash, record_event, verify_chain
from compliance.store.models import AuditEvent
from tests.audit.test_audit import events, walk_bucket, writable_audit_log
from tests.conftest import DEMO_POLICY, ROOT, Deployment
from tests.slack_stub import SlackStub

DEMO_ANCHOR = 'anchor_file = "var/audit-anchors.jsonl"\n'
ANCHORED_POLICY = DEMO_POLICY.replace(DEMO_ANCHOR, 'anchor_file = "evidence/audit-anchors.jsonl"\n')
assert ANCHORED_POLICY != DEMO_POLICY


@pytest.fixture
def anchored(demo: Deployment) -> Deployment:
    """A walked-through bucket and an anchor taken after it."""
    demo.write_policy(ANCHORED_POLICY)
    walk_bucket(demo)
    result = demo.run("anchor-audit-log", "--execute")
    assert result.exit_code == 0, result.output
    return demo


def anchor_lines(d: Deployment) -> list[dict]:
    path = d.dir / "evidence" / "audit-anchors.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def verify(d: Deployment) -> tuple[int, str]:
    result = d.run("verify-audit-log")
    return result.exit_code, result.output


def test_the_anchor_holds_the_chain_head_and_a_rerun_appends(anchored: Deployment) -> None:
    trail = events(anchored)
    (first,) = anchor_lines(anchored)
    # The anchor was taken before its own audit event was written.
    assert trail[-1].action == "audit_log.anchored"
    head = trail[-2]
    assert (first["event_id"], first["hash"]) == (head.id, head.hash)
    assert first["count"] == len(trail) - 1
    assert first["prev"] == GENESIS and first["anchored_at"]
    assert trail[-1].details["hash"] == head.hash

    second = anchored.run("--json", "anchor-audit-log", "--execute")
    assert second.exit_code == 0, second.output
    lines = anchor_lines(anchored)
    assert len(lines) == 2 and lines[0] == first, "the file is only ever appended to"
    assert lines[1]["event_id"] == trail[-1].id
    code, output = verify(anchored)
    assert code == 0, output
    assert f"({lines[1]['count']} events up to event {lines[1]['event_id']})" in output


def test_a_dry_run_writes_no_anchor(demo: Deployment) -> None:
    demo.write_policy(ANCHORED_POLICY)
    walk_bucket(demo)
    before = len(events(demo))
    result = demo.run("anchor-audit-log")
    assert result.exit_code == 0, result.output
    assert "[DRY RUN] Would anchor" in result.output
    assert not (demo.dir / "evidence" / "audit-anchors.jsonl").exists()
    assert len(events(demo)) == before


def test_anchoring_needs_an_anchor_file(demo: Deployment) -> None:
    demo.write_policy(DEMO_POLICY.replace(DEMO_ANCHOR, ""))
    result = demo.run("anchor-audit-log", "--execute")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: audit.anchor_file: not set")


def test_deleting_the_newest_events_is_found(anchored: Deployment) -> None:
    trail = events(anchored)
    anchor = anchor_lines(anchored)[-1]
    keep = trail[1].id
    assert anchor["event_id"] > keep + 1
    with writable_audit_log(anchored) as conn:
        conn.execute(text("DELETE FROM audit_events WHERE id > :keep"), {"keep": keep})
    with anchored.session() as s:
        assert verify_chain(s).ok, "the chain alone cannot see a cut at the end"
    code, output = verify(anchored)
    assert code == 1
    assert (
        f"the audit log was truncated: events {keep + 1} to {anchor['event_id']} are missing"
        in output
    )
    assert f"recorded {anchor['count']} events up to event {anchor['event_id']}" in output


def test_deleting_every_event_is_found(anchored: Deployment) -> None:
    anchor = anchor_lines(anchored)[-1]
    with writable_audit_log(anchored) as conn:
        conn.execute(text("DELETE FROM audit_events"))
    code, output = verify(anchored)
    assert code == 1
    assert f"events 1 to {anchor['event_id']} are missing" in output
    assert "the log now ends at event 0" in output


def test_a_recomputed_chain_is_found(anchored: Deployment) -> None:
    """Edit one event, then recompute every hash after it: the chain verifies, the anchor not."""
    with writable_audit_log(anchored) as conn:
        conn.execute(text("UPDATE audit_events SET actor = 'someone-else' WHERE id = 3"))
        rows = conn.execute(select(AuditEvent.__table__).order_by(AuditEvent.__table__.c.id)).all()
        prev = GENESIS
        for row in rows:
            digest = compute_hash(
                prev,
                _canonical(
                    row.occurred_at, row.actor, row.action, row.target_type, row.target_id,
                    row.details or {},
                ),
            )  # fmt: skip
            conn.execute(
                text("UPDATE audit_events SET prev_hash = :p, hash = :h WHERE id = :id"),
                {"p": prev, "h": digest, "id": row.id},
            )
            prev = digest
    with anchored.session() as s:
        assert verify_chain(s).ok, "the forger's chain is internally consistent"
    anchor = anchor_lines(anchored)[-1]
    code, output = verify(anchored)
    assert code == 1
    assert f"the audit log was rewritten: event {anchor['event_id']}'s hash differs" in output


def test_an_edited_anchor_file_is_found(anchored: Deployment) -> None:
    anchored.run("anchor-audit-log", "--execute")
    path = anchored.dir / "evidence" / "audit-anchors.jsonl"
    _older, newer = path.read_text().splitlines()
    path.write_text(newer + "\n")  # drop the older anchor
    code, output = verify(anchored)
    assert code == 1
    assert "line 1 does not follow the line before it" in output


def test_events_after_the_latest_anchor_still_verify(anchored: Deployment) -> None:
    result = anchored.run("submit-dsar", "--kind", "access", "--subject-id", "5",
                          "--requested-by", "support@example.com", "--execute")  # fmt: skip
    assert result.exit_code == 0, result.output
    code, output = verify(anchored)
    assert code == 0, output


@pytest.fixture
def slack() -> Iterator[SlackStub]:
    with SlackStub() as stub:
        yield stub


def test_the_anchor_is_posted_to_the_ops_channel(demo: Deployment, slack: SlackStub) -> None:
    demo.write_policy(ANCHORED_POLICY)
    walk_bucket(demo)
    env = {"SLACK_BOT_TOKEN": "xoxb-test-token", "SLACK_API_URL": slack.base_url}
    result = demo.run("anchor-audit-log", "--execute", env=env)
    assert result.exit_code == 0, result.output
    (anchor,) = anchor_lines(demo)
    (call,) = [c for c in slack.calls if c.method == "chat.postMessage"]
    # Outside production every message goes to the test channel (compliance.toml).
    assert call.channel == "#privacy-desk-test"
    assert anchor["hash"] in (call.text or "")
    assert f"{anchor['count']} events, newest event {anchor['event_id']}" in (call.text or "")
    assert events(demo)[-1].details["slack_posted"] is True


def test_slack_failing_keeps_the_file_anchor_and_exits_1(
    demo: Deployment, slack: SlackStub
) -> None:
    demo.write_policy(ANCHORED_POLICY)
    walk_bucket(demo)
    slack.fail_channel("#privacy-desk-test", "channel_not_found")
    env = {"SLACK_BOT_TOKEN": "xoxb-test-token", "SLACK_API_URL": slack.base_url}
    result = demo.run("anchor-audit-log", "--execute", env=env)
    assert result.exit_code == 1
    assert "Slack said channel_not_found" in result.stderr
    assert len(anchor_lines(demo)) == 1


def test_the_audit_log_is_append_only_on_both_databases(demo: Deployment) -> None:
    walk_bucket(demo)
    statements = ["UPDATE audit_events SET actor = 'x'", "DELETE FROM audit_events",
                  "DELETE FROM audit_events WHERE id = 1"]  # fmt: skip
    if demo.backend == "postgresql":
        statements.append("TRUNCATE audit_events")
    for sql in statements:
        with (
            pytest.raises(DBAPIError, match="audit_events is append-only"),
            demo.engine.begin() as conn,
        ):
            conn.execute(text(sql))
    with demo.session() as s:
        assert verify_chain(s).ok


def test_the_jobs_role_of_the_readme_cannot_lift_the_guard(demo: Deployment) -> None:
    """README's grants, run as written: the jobs' role adds events and can do nothing else."""
    if demo.backend != "postgresql":
        pytest.skip("roles and grants are PostgreSQL's")
    walk_bucket(demo)
    schema = demo.database_url.split("search_path%3D", 1)[1]
    role = f"pd_jobs_{uuid.uuid4().hex[:10]}"
    readme = (ROOT / "README.md").read_text()
    marker = "-- after each init-db, as privacy_desk_owner, in the compliance database\n"
    block = readme.split(marker, 1)[1].split("```", 1)[0]
    grants = block.replace("privacy_desk_jobs", f'"{role}"').replace(
        "SCHEMA public", f'SCHEMA "{schema}"'
    )
    with demo.engine.begin() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE'))
        for statement in grants.split(";"):
            if statement.strip():
                conn.execute(text(statement))
    jobs = create_engine(make_url(demo.database_url).set(username=role))
    try:
        with Session(jobs) as s:
            record_event(s, actor="jobs", action="note.added", target_type="note")
            s.commit()
            assert verify_chain(s).ok
        for sql in (
            "ALTER TABLE audit_events DISABLE TRIGGER USER",
            "ALTER TABLE audit_events DISABLE TRIGGER ALL",
            "DROP TRIGGER audit_events_no_update_delete ON audit_events",
            "SET session_replication_role = replica",
            "UPDATE audit_events SET actor = 'x'",
            "DELETE FROM audit_events",
            "TRUNCATE audit_events",
        ):
            with pytest.raises(DBAPIError), jobs.begin() as conn:
                conn.execute(text(sql))
    finally:
        jobs.dispose()
        with demo.engine.begin() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))
    assert len(events(demo)) > 0


# ---------------------------------------------------------------- the anchors themselves go


def test_a_missing_anchor_file_is_a_finding_once_the_trail_records_anchors(
    anchored: Deployment,
) -> None:
    """It once said "No anchor yet" and exited 0."""
    path = anchored.dir / "evidence" / "audit-anchors.jsonl"
    for damage in (path.unlink, lambda: path.write_text("")):
        damage()
        code, output = verify(anchored)
        assert code == 1, output
        assert "jsonl is missing or empty, but the audit trail records 1 anchors" in output
    anchored.write_policy(DEMO_POLICY.replace(DEMO_ANCHOR, ""))  # no setting naming the file
    code, output = verify(anchored)
    assert code == 1 and "records 1 anchors but [audit] anchor_file is not set" in output


def test_removing_the_last_anchor_line_is_found(anchored: Deployment) -> None:
    anchored.run("anchor-audit-log", "--execute")
    path = anchored.dir / "evidence" / "audit-anchors.jsonl"
    first, _second = path.read_text().splitlines()
    path.write_text(first + "\n")
    code, output = verify(anchored)
    assert code == 1
    assert "holds only 1, but the audit trail records 2 anchors" in output


def test_removing_the_last_anchor_and_cutting_the_log_back_to_the_one_before_is_found(
    anchored: Deployment,
) -> None:
    """The review's case: drop the newest line, delete every event after the older anchor."""
    more = anchored.run("submit-dsar", "--kind", "access", "--subject-id", "5",
                        "--requested-by", "support@example.com", "--execute")  # fmt: skip
    assert more.exit_code == 0, more.output
    assert anchored.run("anchor-audit-log", "--execute").exit_code == 0
    path = anchored.dir / "evidence" / "audit-anchors.jsonl"
    first, _second = path.read_text().splitlines()
    path.write_text(first + "\n")
    cut = json.loads(first)["event_id"]
    with writable_audit_log(anchored) as conn:
        conn.execute(text("DELETE FROM audit_events WHERE id > :cut"), {"cut": cut})
    with anchored.session() as s:
        assert verify_chain(s).ok
    code, output = verify(anchored)
    assert code == 1, output
    assert "the audit log was cut back to the anchor of" in output
    assert f"the event recording that anchor (after event {cut}) is missing" in output


def test_a_dropped_audit_table_is_one_line(anchored: Deployment) -> None:
    with anchored.engine.begin() as conn:  # the owner's right; no trigger guards a DROP
        conn.execute(text("DROP TABLE audit_events"))
    result = anchored.run("verify-audit-log")
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: the compliance database has no audit_events table")
