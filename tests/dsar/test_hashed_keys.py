"""After an erasure the desk keeps the subject's key only as a keyed hash, and still knows them.

The shop's keys are text codes ("C-0000"), the kind that name a person (Northwind's "ANATR" is
Ana Trujillo). Once an erasure request completed, or a bucket reaching the customers table
erased them, no compliance table holds the code; the rejection cool-off and replay-erasures
hash the live keys alike, so what they do is unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column as SqlColumn
from sqlalchemy import Integer, MetaData, String, Table, delete, insert, literal, select, text

from compliance.audit.subject_keys import hashed_key, hashed_key_sql
from compliance.store.engines import make_engine, migrate
from compliance.store.models import (
    AuditEvent,
    ComplianceProfile,
    DeletionRecord,
    DsarRequest,
    JobRun,
)
from tests.conftest import Backend, Deployment, make_deployment, ok, summary
from tests.shop import SHOP_POLICY, fill_shop
from tests.shop import metadata as shop_tables

SHOP_KEY = "shop-hash-key-0123456789abcdef-0123456789"
SECRET = SHOP_KEY.encode()
POLICY = (
    SHOP_POLICY
    + '\n[roles]\ncompliance_officer = ["dpo@example.com"]\nsupport = ["support@example.com"]\n'
)
BUCKET = "lapsed_customers"
SHOP_TABLES = shop_tables.sorted_tables
OFFICER = "dpo@example.com"
SUPPORT = "support@example.com"


@pytest.fixture
def shop(backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployment]:
    monkeypatch.setenv("COMPLIANCE_HASH_KEY", SHOP_KEY)  # not demo mode: hashing needs its key
    d = make_deployment(backend, tmp_path / "shop", POLICY)
    fill_shop(d.app_engine)
    yield d
    d.dispose()


@pytest.fixture
def one_database_shop(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Deployment]:
    """Both URLs one database: records are opened, and held back, by SQL in it."""
    monkeypatch.setenv("COMPLIANCE_HASH_KEY", SHOP_KEY)
    url = backend.url("shared")
    d = Deployment(tmp_path, tmp_path / "compliance.toml", url, url, backend.name)
    d.write_policy(POLICY)
    migrate(d.engine)
    fill_shop(d.app_engine)
    yield d
    d.dispose()


def erase(d: Deployment, subject: str) -> str:
    """An erasure request for ``subject``, carried through as the shipped schedule would."""
    reference = summary(
        d, "submit-dsar", "--kind", "erasure", "--subject-id", subject, "--requested-by",
        SUPPORT, "--identity-method", "id_document", "--identity-check", "passport seen",
        "--execute",
    )["reference"]  # fmt: skip
    ok(d.run("review-dsar", reference, "--approve", "--reviewer", OFFICER, "--execute"))
    ok(d.run("process-dsar-requests", "--execute"))
    ok(d.run("apply-deletions", "--execute"))
    return reference


def decide_the_bucket(d: Deployment, *decision: str) -> None:
    """Everyone due in the bucket, batched and decided by the officer (``--accept``, or
    ``--reject --reason …``) in one go."""
    ok(d.run("create-deletion-records", "--bucket", BUCKET, "--execute"))
    ok(d.run("create-deletion-batches", "--bucket", BUCKET, "--execute"))
    ok(
        d.run(
            "review-batch", "--all-pending", "--bucket", BUCKET, *decision, "--reviewer",
            OFFICER, "--execute",
        )
    )  # fmt: skip


def backup(d: Deployment) -> dict[str, list[dict[str, Any]]]:
    """The shop's rows (only the shop's: the compliance tables may share its database)."""
    with d.app_engine.connect() as conn:
        return {t.name: [dict(r._mapping) for r in conn.execute(select(t))] for t in SHOP_TABLES}


def restore(d: Deployment, saved: dict[str, list[dict[str, Any]]]) -> None:
    """What a restore from that backup does to the shop's rows: everything as it was then."""
    with d.app_engine.begin() as conn:
        for table in reversed(SHOP_TABLES):
            conn.execute(delete(table))
        for table in SHOP_TABLES:
            conn.execute(insert(table), saved[table.name])


def compliance_text(d: Deployment) -> str:
    """Every row of every compliance table as text: what a search for the key would read."""
    meta = MetaData()
    meta.reflect(d.engine)
    with d.engine.connect() as conn:
        return "\n".join(
            json.dumps([str(v) for v in row])
            for t in meta.sorted_tables
            for row in conn.execute(select(t))
        )


def test_the_sql_hash_of_a_key_is_the_one_python_computes(backend: Backend) -> None:
    engine = make_engine(backend.url("keys"))
    keys = Table("keys", MetaData(), SqlColumn("n", Integer), SqlColumn("code", String(10)))
    keys.create(engine)
    dialect = engine.dialect.name
    with engine.begin() as conn:
        conn.execute(keys.insert().values(n=42, code="ANATR"))
        row = conn.execute(
            select(
                hashed_key_sql(keys.c.n, SECRET, dialect),
                hashed_key_sql(keys.c.code, SECRET, dialect),
                hashed_key_sql(literal("Ünïcødé"), SECRET, dialect),
            )
        ).one()
    engine.dispose()
    assert tuple(row) == (
        hashed_key("42", SECRET), hashed_key("ANATR", SECRET), hashed_key("Ünïcødé", SECRET)
    )  # fmt: skip
    assert row[1].startswith("anon-") and len(row[1]) == 45


def test_once_an_erasure_completed_no_compliance_table_holds_the_key(shop: Deployment) -> None:
    subject, other = "C-0002", "C-0004"
    ok(shop.run("export-user-data", "--subject-id", subject, "--by", SUPPORT))
    ok(shop.run("export-user-data", "--subject-id", other, "--by", SUPPORT))
    reference = erase(shop, subject)
    assert subject in compliance_text(shop)  # applied, not completed yet: still at work

    dry = ok(shop.run("process-dsar-requests"))
    assert "Would keep the keys of 1 erased subjects only as a keyed hash" in dry
    assert subject in compliance_text(shop)
    done = ok(shop.run("process-dsar-requests", "--execute"))
    assert "Kept the keys of 1 erased subjects only as a keyed hash" in done
    hashed = hashed_key(subject, SECRET)
    stored = compliance_text(shop)
    assert subject not in stored and hashed in stored
    assert other in stored, "a subject not erased keeps their key"
    with shop.session() as s:
        request = s.scalars(select(DsarRequest).where(DsarRequest.reference == reference)).one()
        assert (request.status, request.subject_id) == ("completed", hashed)
        profiles = set(s.scalars(select(ComplianceProfile.subject_id)))
        assert hashed in profiles and other in profiles
        submitted = s.scalars(select(JobRun).where(JobRun.job == "submit-dsar")).one()
        assert submitted.arguments["subject_id"] == hashed
        assert submitted.summary["subject_id"] == hashed
        events = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "subject_keys.hashed")
        ).all()
        assert [e.details for e in events] == [
            {"subjects": 1, "job_runs": 2}
        ]  # export-user-data, submit-dsar
    # Nothing left to hash: a rerun changes nothing.
    assert summary(shop, "process-dsar-requests", "--execute")["keys_hashed"] == 0
    assert compliance_text(shop).count(hashed) == stored.count(hashed)


def test_without_a_hash_key_the_dry_run_and_the_run_both_say_the_keys_stay(
    shop: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused before the check of what each erased subject still has open: that check reads
    every erased key, on every run, for nothing."""
    subject = "C-0002"
    erase(shop, subject)
    monkeypatch.delenv("COMPLIANCE_HASH_KEY")
    why = (
        "Keys not hashed: COMPLIANCE_HASH_KEY is not set (or too short), so the keys of 1 "
        "erased subjects stay as typed; set it (e.g. openssl rand -hex 32)"
    )
    assert why in ok(shop.run("process-dsar-requests"))
    done = summary(shop, "process-dsar-requests", "--execute")
    assert (done["keys_hashed"], done["completed"] != []) == (0, True)
    assert done["keys_not_hashed"] == why.removeprefix("Keys not hashed: ")
    assert subject in compliance_text(shop)


@pytest.mark.parametrize("where", ["shop", "one_database_shop"])
def test_cool_off_and_replay_know_an_erased_subject_by_the_hash(
    backend: Backend, where: str, request: pytest.FixtureRequest
) -> None:
    shop: Deployment = request.getfixturevalue(where)  # on the backend's database
    saved = backup(shop)
    decide_the_bucket(shop, "--reject", "--reason", "not yet")
    ok(shop.run("purge-compliance-data", "--bucket", BUCKET, "--execute"))

    def held_back(*execute: str) -> tuple[int, int, int, int]:
        run = summary(shop, "create-deletion-records", "--bucket", BUCKET, *execute)
        return run["due"], run["cooling_off"], run["rejected_recently"], run["created"]

    before = held_back()
    assert before == (15, 15, 15, 0)
    erase(shop, "C-0000")  # a rejected subject asks to be erased; the request completes
    ok(shop.run("process-dsar-requests", "--execute"))
    with shop.session() as s:
        assert (
            s.scalar(select(ComplianceProfile.id).where(ComplianceProfile.subject_id == "C-0000"))
            is None
        )
    assert held_back() == before, "the erased subject is still held back in the bucket"
    assert held_back("--execute") == before, "and a run holds them back as its dry run does"

    erased = (
        shop.app_rows("orders", "customer_code = 'C-0000'"),
        shop.app_rows("customers", "code = 'C-0000'"),
    )
    assert erased[0] == [] and erased[1][0]["email"].startswith("anon-")
    restore(shop, saved)
    assert shop.app_rows("orders", "customer_code = 'C-0000'")
    today = datetime.now(UTC).date().isoformat()
    dry = summary(shop, "replay-erasures", "--since", today)
    assert (dry["erasures"], dry["replayed"]) == (1, 1)
    ok(shop.run("replay-erasures", "--since", today, "--execute"))
    assert (
        shop.app_rows("orders", "customer_code = 'C-0000'"),
        shop.app_rows("customers", "code = 'C-0000'"),
    ) == erased
    with shop.app_engine.connect() as conn:  # the rejected ones were not erased
        kept = conn.execute(text("SELECT count(*) FROM orders WHERE customer_code = 'C-0002'"))
        assert kept.scalar_one() == 2


def test_a_subject_erased_twice_keeps_one_profile(shop: Deployment) -> None:
    """Their anonymized row is still there: support exports it, they ask again, it completes."""
    subject = "C-0006"
    erase(shop, subject)
    ok(shop.run("process-dsar-requests", "--execute"))
    ok(shop.run("export-user-data", "--subject-id", subject, "--by", SUPPORT))
    second = erase(shop, subject)
    with shop.session() as s:
        assert set(s.scalars(select(ComplianceProfile.subject_id))) == {
            subject, hashed_key(subject, SECRET)
        }, "at work again: the key as typed beside the hashed one"  # fmt: skip
    ok(shop.run("process-dsar-requests", "--execute"))
    with shop.session() as s:
        (profile,) = s.scalars(select(ComplianceProfile)).all()
        assert profile.subject_id == hashed_key(subject, SECRET)
        records = s.scalars(select(DeletionRecord.compliance_profile_id)).all()
        requests = s.scalars(select(DsarRequest.subject_id)).all()
    assert records == [profile.id, profile.id], "both erasures' records stay with the subject"
    assert requests == [profile.subject_id] * 2 and second
    assert subject not in compliance_text(shop)


def test_a_bucket_that_erases_its_subjects_leaves_only_their_hash_and_replay_finds_them(
    shop: Deployment,
) -> None:
    saved = backup(shop)
    decide_the_bucket(shop, "--accept")
    ok(shop.run("apply-deletions", "--execute"))
    with shop.session() as s:
        keys = set(s.scalars(select(ComplianceProfile.subject_id)))
    assert len(keys) == 15 and all(k.startswith("C-") for k in keys)

    dry = ok(shop.run("process-dsar-requests"))
    assert "Would keep the keys of 15 erased subjects only as a keyed hash" in dry
    assert summary(shop, "process-dsar-requests", "--execute")["keys_hashed"] == 15
    stored = compliance_text(shop)
    assert not [k for k in keys if k in stored]
    assert all(hashed_key(k, SECRET) in stored for k in keys)

    ok(shop.run("purge-compliance-data", "--bucket", BUCKET, "--execute"))
    restore(shop, saved)
    some = sorted(keys)[0]
    assert shop.app_rows("orders", f"customer_code = '{some}'")
    today = datetime.now(UTC).date().isoformat()
    assert summary(shop, "replay-erasures", "--since", today)["replayed"] == 15
    ok(shop.run("replay-erasures", "--since", today, "--execute"))
    assert shop.app_rows("orders", f"customer_code = '{some}'") == []


def test_only_buckets_that_reach_the_subjects_table_erase_a_subject() -> None:
    from compliance.policy.loader import load_policy
    from tests.conftest import ROOT

    demo = load_policy(ROOT / "compliance.toml", env={})
    assert set(demo.subject_erasing_buckets) == {"closed_accounts", "inactive_accounts"}
