"""Many systems, one decision: an accepted deletion erases the subject in every SQL database.

Two real databases per test: SQLite + SQLite, and PostgreSQL + PostgreSQL (separate
schemas). The billing database is a system of its own, declared in the policy.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text

from compliance.demo.generate import create_demo_app_database
from compliance.errors import ConfigError
from compliance.policy.loader import load_policy
from compliance.store.models import DeletionBatch, DeletionRecord, ErasureTask
from tests.conftest import DEMO_POLICY, Backend, Deployment, fill_demo, make_deployment


def two_database_policy(extra: str = "") -> str:
    """The demo policy: its billing database holds customers (anonymized) and notes."""
    return DEMO_POLICY + extra


@pytest.fixture
def billed(backend: Backend, tmp_path: Path) -> Iterator[tuple[Deployment, Engine]]:
    """The demo application database plus a billing database, each a real database."""
    d = make_deployment(backend, tmp_path / "deploy", two_database_policy())
    fill_demo(d, users_count=300, seed=7)
    yield d, d.billing_engine
    d.dispose()


def summary(result) -> dict:  # type: ignore[no-untyped-def]
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def accept_everything(d: Deployment, bucket: str) -> None:
    assert d.run("create-deletion-records", "--bucket", bucket, "--execute").exit_code == 0
    batches = d.run("create-deletion-batches", "--bucket", bucket, "--execute")
    assert batches.exit_code == 0, batches.output
    with d.session() as s:
        ids = s.scalars(
            select(DeletionBatch.id).where(
                DeletionBatch.bucket == bucket, DeletionBatch.reviewed_status == "pending"
            )
        ).all()
    for batch_id in ids:
        review = d.run(
            "review-batch", str(batch_id), "--accept", "--reviewer", "dpo@example.com", "--execute"
        )
        assert review.exit_code == 0, review.output


def billing_rows(billing: Engine, sql: str) -> list[tuple]:
    with billing.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def test_an_accepted_deletion_erases_the_subject_in_both_databases(
    billed: tuple[Deployment, Engine],
) -> None:
    d, billing = billed
    accept_everything(d, "closed_accounts")
    with d.session() as s:
        keys = [
            int(k)
            for k in s.scalars(
                text(
                    "SELECT p.subject_id FROM compliance_profiles p JOIN deletion_records r "
                    "ON r.compliance_profile_id = p.id"
                )
            )
        ]
    in_billing = billing_rows(
        billing,
        f"SELECT user_id FROM billing_customers WHERE user_id IN ({','.join(map(str, keys))})",
    )
    assert in_billing, "some closed accounts are billing customers"
    dry = d.run("apply-deletions")
    assert dry.exit_code == 0
    assert "billing_customers" in dry.output, "the dry run counts rows in the billing database too"

    applied = summary(d.run("apply-deletions", "--execute", "--json"))

    assert applied["applied"] == len(keys) and applied["failed"] == 0
    assert applied["tasks"] == {"app_database": len(keys), "billing": len(keys)}
    customers = billing_rows(
        billing,
        "SELECT billing_email, company, vat_id FROM billing_customers "
        f"WHERE user_id IN ({','.join(map(str, keys))})",
    )
    assert all(email.startswith("anon-") and company is None and vat is None
               for email, company, vat in customers)  # fmt: skip
    assert not billing_rows(
        billing,
        "SELECT n.id FROM billing_notes n JOIN billing_customers c ON c.id = n.customer_id "
        f"WHERE c.user_id IN ({','.join(map(str, keys))})",
    )
    others = billing_rows(billing, "SELECT count(*) FROM billing_customers WHERE billing_email "
                                   "NOT LIKE 'anon-%'")  # fmt: skip
    assert others[0][0] > 0, "customers of other accounts keep their billing data"
    with d.session() as s:
        tasks = s.scalars(select(ErasureTask)).all()
        assert {(t.system, t.status, t.attempts) for t in tasks} == {
            ("app_database", "done", 1),
            ("billing", "done", 1),
        }
        assert len(tasks) == 2 * len(keys)
        assert all(t.subject is None for t in tasks), "SQL tasks never keep who the subject is"


def test_a_failing_database_keeps_the_record_open_and_the_rerun_finishes_only_that_system(
    billed: tuple[Deployment, Engine],
) -> None:
    d, billing = billed
    accept_everything(d, "closed_accounts")
    # A table the policy has never heard of points at billing notes: those cannot go yet.
    with billing.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE note_locks (id INTEGER PRIMARY KEY, "
                "note_id INTEGER NOT NULL REFERENCES billing_notes(id))"
            )
        )
        conn.execute(text("INSERT INTO note_locks (id, note_id) SELECT id, id FROM billing_notes"))
        blocked = {
            str(uid)
            for (uid,) in conn.execute(
                text(
                    "SELECT DISTINCT c.user_id FROM billing_customers c "
                    "JOIN billing_notes n ON n.customer_id = c.id"
                )
            )
        }
    with d.session() as s:
        subjects = dict(
            s.execute(
                text(
                    "SELECT r.id, p.subject_id FROM deletion_records r "
                    "JOIN compliance_profiles p ON p.id = r.compliance_profile_id"
                )
            ).all()
        )
    stuck = {rid for rid, subject in subjects.items() if subject in blocked}
    assert stuck and len(stuck) < len(subjects), "the demo data has both kinds of customer"

    first = d.run("apply-deletions", "--execute", "--json")

    assert first.exit_code == 1, "failed records make the run exit 1"
    result = json.loads(first.stdout)
    assert result["applied"] == len(subjects) - len(stuck) and result["failed"] == len(stuck)
    assert all(e["error"].startswith("billing: ") for e in result["errors"])
    with d.session() as s:
        open_ids = set(s.scalars(select(DeletionRecord.id).where(
            DeletionRecord.deletion_applied_at.is_(None))))  # fmt: skip
        assert open_ids == stuck
        failed = s.execute(
            select(ErasureTask.deletion_record_id, ErasureTask.system).where(
                ErasureTask.status == "failed"
            )
        ).all()
        assert {rid for rid, _ in failed} == stuck and {sys for _, sys in failed} == {"billing"}
    users_erased = d.checksum("users")

    with billing.begin() as conn:
        conn.execute(text("DROP TABLE note_locks"))
    rerun = summary(d.run("apply-deletions", "--execute", "--json"))

    assert rerun["applied"] == len(stuck) and rerun["failed"] == 0
    assert rerun["tasks"] == {"billing": len(stuck)}, "the application part is not redone"
    assert d.checksum("users") == users_erased
    with d.session() as s:
        attempts = {
            (t.deletion_record_id in stuck, t.system, t.status, t.attempts)
            for t in s.scalars(select(ErasureTask))
        }
        assert attempts == {
            (True, "app_database", "done", 1),
            (True, "billing", "done", 2),
            (False, "app_database", "done", 1),
            (False, "billing", "done", 1),
        }
        records = s.scalars(select(DeletionRecord)).all()
        assert all(r.deletion_applied_at and r.deletion_error is None for r in records)


def test_a_missing_table_in_the_billing_database_is_named_before_anything_runs(
    backend: Backend, tmp_path: Path
) -> None:
    d = make_deployment(backend, tmp_path / "deploy", two_database_policy())
    create_demo_app_database(d.app_engine, users_count=20, seed=1)
    result = d.run("create-deletion-records", "--bucket", "closed_accounts", "--execute")
    assert result.exit_code == 2
    assert "tables.billing_customers: no such table in system 'billing'" in result.output
    d.dispose()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[systems.crm]\nkind = "spreadsheet"\n', "systems.crm.kind: missing or unknown"),
        ('[systems.crm]\nkind = "sql"\n', "systems.crm: give exactly one of url or url_env"),
        (
            '[systems.crm]\nkind = "sql"\nurl_env = "CRM_DB_URL"\n',
            "systems.crm.url_env: the environment variable CRM_DB_URL is not set",
        ),
        (
            '[systems.helpdesk]\nkind = "webhook"\nurl = "http://127.0.0.1:9/x"\n',
            "systems.helpdesk.secret_env: missing",
        ),
        (
            '[systems.helpdesk]\nkind = "webhook"\nurl = "ftp://x"\nsecret_env = "S"\n',
            "systems.helpdesk.url: 'ftp://x' is not an absolute http:// or https:// URL",
        ),
        ('[systems.mailer]\nkind = "manual"\n', "systems.mailer.instructions: missing"),
        (
            '[systems.mailer]\nkind = "manual"\ninstructions = "x"\nurl = "http://a"\n',
            "systems.mailer.url: unknown key for a manual system",
        ),
        (
            '[systems.app_database]\nkind = "sql"\nurl = "sqlite://"\n',
            "systems.app_database: reserved for [app_database]",
        ),
        (
            '[tables.ledger]\nsystem = "erp"\nsubject_column = "user_id"\non_erasure = "retain"\n',
            "tables.ledger.system: 'erp' is not a declared system",
        ),
        (
            '[tables.ledger]\nsystem = "newsletter"\nsubject_column = "u"\non_erasure = "retain"\n',
            "tables.ledger.system: 'newsletter' is a manual system; tables live in sql systems",
        ),
        (
            '[tables.billing_extra]\nvia = { table = "users", column = "user_id" }\n'
            'system = "billing"\non_erasure = "delete"\n',
            "tables.billing_extra.via.table: 'users' lives in system 'app_database', not 'billing'",
        ),
        (
            '[buckets.churned]\ntables = ["users"]\nsystems = ["helpdesk"]\n'
            'rules = [{ sql = "SELECT id FROM users" }]\n',
            "buckets.churned.systems[0]: 'helpdesk' is not a declared system",
        ),
        (
            '[buckets.churned]\ntables = ["users"]\nsystems = ["billing"]\n'
            'rules = [{ sql = "SELECT id FROM users" }]\n',
            "buckets.churned.systems[0]: 'billing' is an sql system",
        ),
        (
            '[buckets.churned]\ntables = ["billing_customers"]\n'
            'rules = [{ table = "billing_customers", timestamp = "updated_at", '
            "older_than_days = 1 }]\n",
            "buckets.churned.rules[0].table: 'billing_customers' lives in system 'billing'",
        ),
    ],
)
def test_a_mistake_in_a_system_is_an_error_naming_the_key(
    tmp_path: Path, extra: str, message: str
) -> None:
    path = tmp_path / "compliance.toml"
    path.write_text(two_database_policy(extra))
    with pytest.raises(ConfigError) as error:
        load_policy(path, env={})
    assert message in str(error.value)


def test_a_bad_system_stops_a_job_with_exit_2_and_changes_nothing(
    billed: tuple[Deployment, Engine],
) -> None:
    d, _ = billed
    body = d.policy_path.read_text()
    d.policy_path.write_text(body + '\n[systems.crm]\nkind = "sql"\nurl_env = "CRM_DB_URL"\n')
    result = d.run("apply-deletions", "--execute")
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == (
        "Error: systems.crm.url_env: the environment variable CRM_DB_URL is not set "
        "(it should hold the database URL)"
    )


def test_a_url_from_the_environment_names_the_billing_database(
    billed: tuple[Deployment, Engine], tmp_path: Path
) -> None:
    d, _ = billed
    url = d.billing_url
    body = d.policy_path.read_text().replace(f'url = "{url}"', 'url_env = "BILLING_DB_URL"')
    assert 'url_env = "BILLING_DB_URL"' in body
    d.policy_path.write_text(body)
    policy = load_policy(d.policy_path, env={"BILLING_DB_URL": url})
    assert policy.systems["billing"].url == url
    assert policy.bucket_systems(policy.buckets["closed_accounts"]) == ("app_database", "billing")
    assert policy.bucket_systems(policy.buckets["stale_support_tickets"]) == ("app_database",)


CRM_POLICY = """
[systems.crm]
kind = "sql"
url = "{url}"
description = "The CRM, which knows people by its own contact numbers"

[tables.crm_links]
system = "crm"
subject_column = "app_user_id"
on_erasure = "delete"

[tables.crm_contacts]
system = "crm"
via = {{ table = "crm_links", column = "id", parent_column = "crm_id" }}
on_erasure = "delete"
"""


def test_a_system_with_its_own_keys_is_reached_through_its_lookup_table(
    backend: Backend, tmp_path: Path
) -> None:
    """The CRM's contacts carry CRM numbers; its link table maps the app's user ids to them."""
    from sqlalchemy import create_engine

    crm_url = backend.url("crm")
    crm = create_engine(crm_url)
    with crm.begin() as conn:
        conn.execute(text("CREATE TABLE crm_links (app_user_id INTEGER, crm_id INTEGER)"))
        conn.execute(text("CREATE TABLE crm_contacts (id INTEGER PRIMARY KEY, email VARCHAR(255))"))
        for user in range(1, 301):
            conn.execute(
                text("INSERT INTO crm_links VALUES (:u, :c)"), {"u": user, "c": 9000 + user}
            )
            conn.execute(
                text("INSERT INTO crm_contacts VALUES (:c, :e)"),
                {"c": 9000 + user, "e": f"contact{user}@example.org"},
            )
    body = DEMO_POLICY.replace(
        '"support_tickets", "billing_customers"]',
        '"support_tickets", "billing_customers", "crm_links"]',
    ) + CRM_POLICY.format(url=crm_url)
    assert 'crm_links"]' in body
    d = make_deployment(backend, tmp_path / "deploy", body)
    try:
        fill_demo(d, users_count=300, seed=7)
        exported = d.run(
            "--json", "export-user-data", "--by", "support@example.com", "--subject-id", "42"
        )
        assert exported.exit_code == 0, exported.output
        rows = json.loads(exported.stdout)["rows"]
        assert rows["crm_links"] == 1 and rows["crm_contacts"] == 1

        accept_everything(d, "closed_accounts")
        with d.session() as s:
            keys = [int(k) for k in s.scalars(text(
                "SELECT p.subject_id FROM compliance_profiles p JOIN deletion_records r "
                "ON r.compliance_profile_id = p.id"
            ))]  # fmt: skip
        assert keys
        applied = summary(d.run("apply-deletions", "--execute", "--json"))
        assert applied["applied"] == len(keys) and applied["failed"] == 0
        assert applied["tasks"]["crm"] == len(keys)
        with crm.connect() as conn:
            left = {r[0] for r in conn.execute(text("SELECT id FROM crm_contacts"))}
            links = {r[0] for r in conn.execute(text("SELECT app_user_id FROM crm_links"))}
        assert left == {9000 + u for u in range(1, 301)} - {9000 + k for k in keys}
        assert links == set(range(1, 301)) - set(keys)
    finally:
        d.dispose()
        crm.dispose()
