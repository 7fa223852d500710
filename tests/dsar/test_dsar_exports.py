"""Access exports: the subject's data, all of it, nobody else's, and nothing secret."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import threading
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from compliance.dsar.cleanup import cleanup_expired_exports
from compliance.dsar.decisions import review_dsar
from compliance.dsar.delivery import create_delivery
from compliance.dsar.processing import claim_requests, process_dsar_requests
from compliance.dsar.requests import submit_dsar
from compliance.store.models import AuditEvent, DsarDelivery, DsarRequest, utcnow
from tests.conftest import DEMO_POLICY, DPO, SUPPORT_STAFF, Deployment
from tests.smtp_server import Inbox, mailing_to
from tests.smtp_server import smtp_inbox as smtp_inbox  # the fixture

LONG = ('Grüße aus Zürich — 東京 😀, "quoted", comma\nnew line; ' * 4000)[:150_000]


def access_requests(d: Deployment, *subject_ids: str) -> list[str]:
    refs = []
    with d.session() as s:
        for subject_id in subject_ids:
            request = submit_dsar(
                s, d.policy(), d.app_engine, kind="access", subject_id=subject_id,
                requested_by=SUPPORT_STAFF, execute=True,
            )  # fmt: skip
            review_dsar(s, request.reference, "approve", reviewer=DPO, four_eyes=True, execute=True)
            refs.append(request.reference)
    return refs


def export_of(d: Deployment, subject_id: str) -> tuple[dict[str, bytes], DsarRequest]:
    (reference,) = access_requests(d, subject_id)
    with d.session() as s:
        process_dsar_requests(s, d.datamap(), actor="worker", execute=True)
        row = s.scalars(select(DsarRequest).where(DsarRequest.reference == reference)).one()
    with zipfile.ZipFile(row.export_path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}, row


def test_the_zip_holds_every_table_of_the_subject_and_a_true_manifest(demo: Deployment) -> None:
    user = demo.app_rows("users", "id = 42")[0]
    files, row = export_of(demo, "42")
    policy = demo.policy()
    tables = sorted(policy.tables)
    assert sorted(files) == sorted(
        [
            "data.json",
            "README.txt",
            "manifest.json",
            *(f"{policy.tables[t].system}/{t}.csv" for t in tables),
        ]
    )
    document = json.loads(files["data.json"])
    data = document["tables"]
    assert sorted(data) == tables
    assert data["users"][0]["email"] == user["email"]
    created = user["created_at"]  # raw SQL on SQLite gives text
    created = datetime.fromisoformat(created) if isinstance(created, str) else created
    exported = datetime.fromisoformat(data["users"][0]["created_at"])  # ISO, with UTC offset
    assert exported.utcoffset() is not None and exported == created.replace(tzinfo=UTC)
    stamped = datetime.fromisoformat(document["exported_at"])
    assert stamped.utcoffset() is not None and abs(utcnow() - stamped) < timedelta(minutes=5)
    workflows = demo.app_rows("workflows", "user_id = 42")
    assert [w["id"] for w in data["workflows"]] == [w["id"] for w in workflows]

    for table in tables:
        rows = list(
            csv.DictReader(
                io.StringIO(files[f"{policy.tables[table].system}/{table}.csv"].decode("utf-8"))
            )
        )
        assert len(rows) == len(data[table])

    manifest = json.loads(files["manifest.json"])
    assert manifest["reference"] == row.reference and manifest["generated_at"]
    listed = {f["name"]: f for f in manifest["files"]}
    assert sorted(listed) == sorted(set(files) - {"manifest.json"})
    for name, entry in listed.items():
        assert entry["sha256"] == hashlib.sha256(files[name]).hexdigest()
        assert entry["bytes"] == len(files[name])


def test_excluded_columns_and_other_subjects_never_appear(demo: Deployment) -> None:
    with demo.app_engine.begin() as conn:
        conn.execute(text("UPDATE users SET password_hash = 'SECRET-PW-HASH' WHERE id = 42"))
        conn.execute(text(
            "INSERT INTO api_tokens (id, user_id, name, token_hash, created_at) "
            "VALUES (990001, 42, 'ci', 'SECRET-TOKEN-HASH', '2025-01-01')"
        ))  # fmt: skip
    others = [u["email"] for u in demo.app_rows("users", "id <> 42")]
    files, _ = export_of(demo, "42")
    blob = b"\n".join(files.values()).decode("utf-8")
    for secret in ("password_hash", "SECRET-PW-HASH", "token_hash", "SECRET-TOKEN-HASH"):
        assert secret not in blob.replace("users.password_hash", "").replace(
            "api_tokens.token_hash", ""
        )
    assert "SECRET" not in blob
    assert not [email for email in others if email in blob]
    readme = files["README.txt"].decode("utf-8")
    assert "users.password_hash: left out" in readme
    assert "invoices: Accounting law" in readme  # the legal basis of what we keep


def test_unicode_and_very_long_values_survive_json_and_csv(demo: Deployment) -> None:
    with demo.app_engine.begin() as conn:
        conn.execute(
            text("UPDATE users SET full_name = 'Zoë Ølberg-Łukasik 李小龍 😀' WHERE id = 42")
        )
        conn.execute(
            text(
                "INSERT INTO support_tickets (id, user_id, subject, body, status, created_at) "
                "VALUES (990002, 42, 'Ünïcødé', :body, 'open', '2025-01-01')"
            ),
            {"body": LONG},
        )
    files, _ = export_of(demo, "42")
    data = json.loads(files["data.json"])["tables"]
    assert data["users"][0]["full_name"] == "Zoë Ølberg-Łukasik 李小龍 😀"
    ticket = next(t for t in data["support_tickets"] if t["id"] == 990002)
    assert ticket["body"] == LONG
    csv.field_size_limit(1_000_000)  # Python's reader stops at 128 KiB by default
    rows = csv.DictReader(
        io.StringIO(files["app_database/support_tickets.csv"].decode("utf-8"), newline="")
    )
    assert next(r for r in rows if r["id"] == "990002")["body"] == LONG


def test_two_workers_never_take_or_mail_the_same_request(
    demo: Deployment, smtp_inbox: Inbox
) -> None:
    demo.write_policy(mailing_to(smtp_inbox, DEMO_POLICY))
    refs = access_requests(demo, *(str(i) for i in range(50, 58)))
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        try:
            with demo.session() as s:
                process_dsar_requests(s, demo.datamap(), actor=name, execute=True, limit=1)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"worker-{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and not any(t.is_alive() for t in threads)
    with demo.session() as s:
        built, done = (
            s.scalars(select(AuditEvent.target_id).where(AuditEvent.action == action)).all()
            for action in ("dsar.export_ready", "dsar.completed")
        )
        statuses = set(s.scalars(select(DsarRequest.status)).all())
    assert sorted(built) == sorted(done) == sorted(refs)  # each exactly once
    assert statuses == {"completed"}
    assert len(smtp_inbox.messages) == 2 * len(refs)  # a link and a code each, never twice


def test_on_postgresql_a_claim_skips_requests_another_worker_holds(demo: Deployment) -> None:
    if demo.backend != "postgresql":
        pytest.skip("FOR UPDATE SKIP LOCKED is PostgreSQL's")
    refs = access_requests(demo, "60", "61", "62")
    with demo.session() as holder, demo.session() as other:
        held = holder.scalars(
            select(DsarRequest.id).where(DsarRequest.reference == refs[0]).with_for_update()
        ).one()
        claimed = claim_requests(other, limit=10)  # does not wait for the holder
        assert held not in claimed and len(claimed) == 2
        holder.rollback()
    with demo.session() as s:
        assert claim_requests(s, limit=10) == [held]
        assert claim_requests(s, limit=10) == []


def test_cleanup_removes_old_exports_and_links_but_keeps_the_evidence(demo: Deployment) -> None:
    _, row = export_of(demo, "70")
    path = Path(row.export_path)
    with demo.session() as s:
        create_delivery(
            s, row.reference, actor=SUPPORT_STAFF, download_url="http://x", policy=demo.policy()
        )
        s.commit()
    later = utcnow() + timedelta(days=31)
    with demo.session() as s:
        dry = cleanup_expired_exports(s, demo.policy(), actor="cron", execute=False, now=later)
    assert (dry.exports, dry.deliveries) == (1, 1) and path.exists()
    with demo.session() as s:
        early = cleanup_expired_exports(s, demo.policy(), actor="cron", execute=True)
    assert (early.exports, early.deliveries) == (0, 0) and path.exists()
    with demo.session() as s:
        done = cleanup_expired_exports(s, demo.policy(), actor="cron", execute=True, now=later)
        assert done.references == [row.reference]
        kept = s.get(DsarRequest, row.id)
        assert kept.export_path is None and kept.export_sha256 == row.export_sha256
        assert s.scalar(select(func.count()).select_from(DsarDelivery)) == 0
        assert "dsar.exports_cleaned" in s.scalars(select(AuditEvent.action)).all()
    assert not path.exists()


def test_cleanup_expired_exports_is_a_dry_run_without_execute(demo: Deployment) -> None:
    result = demo.run("cleanup-expired-exports")
    assert result.exit_code == 0, result.output
    assert "[DRY RUN] Would delete 0 export files and 0 delivery links" in result.output
