"""After the application database is restored from an older backup, erasures are redone."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import MetaData, delete, insert, select

from compliance.store.models import AuditEvent, ComplianceProfile, DeletionRecord
from tests.conftest import Deployment, ok, ok_stdout

BUCKET = "closed_accounts"
OFFICER = "dpo@example.com"


def backup(d: Deployment) -> dict[str, list[dict[str, Any]]]:
    meta = MetaData()
    meta.reflect(d.app_engine)
    with d.app_engine.connect() as conn:
        return {
            t.name: [dict(r._mapping) for r in conn.execute(select(t))] for t in meta.sorted_tables
        }


def restore(d: Deployment, saved: dict[str, list[dict[str, Any]]]) -> None:
    """What a restore from that backup does to the rows: everything as it was then."""
    meta = MetaData()
    meta.reflect(d.app_engine)
    with d.app_engine.begin() as conn:
        for table in reversed(meta.sorted_tables):
            conn.execute(delete(table))
        for table in meta.sorted_tables:
            if saved[table.name]:
                conn.execute(insert(table), saved[table.name])


def test_replaying_erasures_after_a_restore_erases_them_again(demo: Deployment) -> None:
    tables = list(demo.policy().tables)
    saved = backup(demo)
    kept = demo.checksum("invoices", "payments")
    ok(demo.run("create-deletion-records", "--bucket", BUCKET, "--execute"))
    out = ok_stdout(demo.run("--json", "create-deletion-batches", "--bucket", BUCKET, "--execute"))
    for batch_id in json.loads(out)["batch_ids"]:
        ok(demo.run("review-batch", str(batch_id), "--accept", "--reviewer", OFFICER, "--execute"))
    ok(demo.run("apply-deletions", "--execute"))
    ok(demo.run("purge-compliance-data", "--bucket", BUCKET, "--execute"))
    erased = demo.checksum(*tables)
    with demo.session() as s:
        assert s.query(DeletionRecord).count() == 0  # only the ledger remembers now
        subject = s.scalars(select(ComplianceProfile.subject_id)).first()

    restore(demo, saved)
    assert demo.checksum(*tables) != erased
    held_row = demo.app_rows("users", f"id = {int(subject)}")
    ok(
        demo.run(
            "hold", "add", "--subject-id", subject, "--reason", "dispute", "--by", OFFICER,
            "--execute",
        )
    )  # fmt: skip
    today = datetime.now(UTC).date().isoformat()

    dry = ok(demo.run("replay-erasures", "--since", today))
    assert "[DRY RUN] Would replay" in dry and "1 subjects now on legal hold left alone" in dry
    assert demo.checksum(*tables) != erased
    ok(demo.run("replay-erasures", "--since", today, "--execute"))

    assert demo.app_rows("users", f"id = {int(subject)}") == held_row  # the hold still wins
    ok(demo.run("hold", "remove", "1", "--reason", "settled", "--by", OFFICER, "--execute"))
    ok(demo.run("replay-erasures", "--since", today, "--execute"))
    assert demo.checksum(*tables) == erased
    assert demo.checksum("invoices", "payments") == kept
    with demo.session() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "erasures.replayed"))
        assert {e.details["since"] for e in events} == {today}


def test_a_since_date_in_the_future_is_refused(demo: Deployment) -> None:
    result = demo.run("replay-erasures", "--since", "2999-01-01", "--execute")
    assert result.exit_code == 2 and "in the future" in result.output
