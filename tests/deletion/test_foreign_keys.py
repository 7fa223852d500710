"""Foreign keys cannot reach retained data; plain ones are reported as blocks, not retried.

A schema the library has never seen, built with each kind of constraint, on SQLite and
PostgreSQL: customers (anonymized), orders (deleted), invoices (retained) pointing at both.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    insert,
    select,
)

from compliance.reports.review_queue import batch_impact
from compliance.store.models import DeletionRecord
from tests.conftest import Backend, Deployment, make_deployment

OFFICER = "dpo@example.com"
POLICY = """
[database]
url = "sqlite:///var/compliance.db"
[app_database]
url = "sqlite:///var/demo_app.db"
[subjects]
table = "customers"
key = "code"
email = "email"
[tables.customers]
subject_column = "code"
on_erasure = "anonymize"
anonymize = { email = "hash", name = "null" }
[tables.orders]
subject_column = "customer_code"
on_erasure = "ORDERS_ACTION"
ORDERS_ANONYMIZE
[tables.invoices]
subject_column = "customer_code"
on_erasure = "retain"
legal_basis = "Bookkeeping"
[buckets.lapsed]
tables = ["customers", "orders"]
rules = [{ table = "customers", timestamp = "last_seen", older_than_days = 30 }]
[roles]
compliance_officer = ["dpo@example.com"]
"""


def policy(orders: str = "delete") -> str:
    anonymize = 'anonymize = { note = "null" }' if orders == "anonymize" else ""
    return POLICY.replace("ORDERS_ACTION", orders).replace("ORDERS_ANONYMIZE", anonymize)


def build(
    engine: Engine,
    *,
    order_fk: dict[str, str] | None = None,
    email_fk: dict[str, str] | None = None,
    unmapped_fk: dict[str, str] | None = None,
) -> None:
    """Six lapsed customers with an order each; invoices for the first three only."""
    meta = MetaData()
    Table(
        "customers",
        meta,
        Column("code", String(10), primary_key=True),
        Column("email", String(100), unique=True),
        Column("name", String(100)),
        Column("last_seen", DateTime),
    )
    Table(
        "orders",
        meta,
        Column("order_no", Integer, primary_key=True),
        Column("customer_code", ForeignKey("customers.code"), nullable=False),
        Column("note", String(100)),
    )
    columns = [
        Column("id", Integer, primary_key=True),
        Column("customer_code", String(10), nullable=False),
    ]
    if order_fk is not None:
        columns.append(
            Column("order_no", ForeignKey("orders.order_no", name="invoices_order_fk", **order_fk))
        )
    if email_fk is not None:
        columns.append(
            Column("email", ForeignKey("customers.email", name="invoices_email_fk", **email_fk))
        )
    Table("invoices", meta, *columns)
    if unmapped_fk is not None:
        Table(
            "shipping_labels",
            meta,
            Column("id", Integer, primary_key=True),
            Column(
                "order_no", ForeignKey("orders.order_no", name="labels_order_fk", **unmapped_fk)
            ),
        )
    meta.create_all(engine)
    old = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=400)
    with engine.begin() as conn:
        for n in range(6):
            code = f"C{n}"
            conn.execute(
                insert(meta.tables["customers"]),
                {"code": code, "email": f"c{n}@example.net", "name": f"N {n}", "last_seen": old},
            )
            conn.execute(insert(meta.tables["orders"]), {"order_no": n, "customer_code": code})
            if n < 3:
                invoice: dict[str, object] = {"id": n, "customer_code": code}
                if order_fk is not None:
                    invoice["order_no"] = n
                if email_fk is not None:
                    invoice["email"] = f"c{n}@example.net"
                conn.execute(insert(meta.tables["invoices"]), invoice)
            if unmapped_fk is not None:
                conn.execute(insert(meta.tables["shipping_labels"]), {"id": n, "order_no": n})


@pytest.fixture
def shop(backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployment]:
    # The shop's policy anonymizes with the keyed `hash` strategy, which outside demo needs a key.
    monkeypatch.setenv("COMPLIANCE_HASH_KEY", "test-only-key-" + "0" * 32)
    d = make_deployment(backend, tmp_path / "fk", policy())
    yield d
    d.dispose()


@pytest.mark.parametrize(
    ("kind", "action", "named"),
    [
        ("order_fk", {"ondelete": "CASCADE"}, "ON DELETE CASCADE"),
        ("order_fk", {"ondelete": "SET NULL"}, "ON DELETE SET NULL"),
        ("email_fk", {"onupdate": "CASCADE"}, "ON UPDATE CASCADE"),
        ("unmapped_fk", {"ondelete": "CASCADE"}, "ON DELETE CASCADE"),
    ],
)
def test_a_cascade_into_kept_rows_is_refused_before_anything_runs(
    shop: Deployment, kind: str, action: dict[str, str], named: str
) -> None:
    build(shop.app_engine, **{kind: action})
    before = shop.checksum("customers", "orders", "invoices")

    for command in (
        ["create-deletion-records", "--bucket", "lapsed"],
        ["apply-deletions", "--execute"],
    ):
        result = shop.run(*command)
        assert result.exit_code == 2, result.output
        assert named in result.output and "REFERENCES" in result.output
        assert len(result.output.strip().splitlines()) == 1
    table = "shipping_labels" if kind == "unmapped_fk" else "invoices"
    assert f"{table}(" in result.output
    assert shop.checksum("customers", "orders", "invoices") == before


def test_a_plain_foreign_key_from_retained_rows_is_a_known_block(shop: Deployment) -> None:
    build(shop.app_engine, order_fk={})
    invoices = shop.checksum("invoices")
    assert shop.run("create-deletion-records", "--bucket", "lapsed", "--execute").exit_code == 0
    out = shop.run("--json", "create-deletion-batches", "--bucket", "lapsed", "--execute")
    batch_id = json.loads(out.stdout)["batch_ids"][0]
    with shop.session() as s:
        impact = batch_impact(s, shop.datamap(), batch_id).set_index("action")
    assert impact.loc["blocks delete of orders (subjects)", "rows"] == 3
    assert impact.loc["blocks delete of orders (subjects)", "table"] == "invoices"
    assert (
        shop.run(
            "review-batch", str(batch_id), "--accept", "--reviewer", OFFICER, "--execute"
        ).exit_code
        == 0
    )

    dry = shop.run("apply-deletions")
    assert "blocked by foreign key" in dry.output and "invoices(order_no) REFERENCES" in dry.output

    first = shop.run("apply-deletions", "--execute")
    assert first.exit_code == 1
    assert "Erased 3 of 6 due records" in first.output
    assert "3 blocked by a foreign key from kept data (3 new;" in first.output
    assert 'set tables.orders.on_erasure = "anonymize" instead of delete' in first.output
    assert shop.checksum("invoices") == invoices
    assert len(shop.app_rows("orders")) == 3  # the three blocked subjects' orders stay whole
    assert shop.app_rows("customers", "code = 'C0'")[0]["name"] == "N 0"  # not half-erased

    # Not retried on every run: they wait, and the run is not a failure.
    second = shop.run("apply-deletions", "--execute")
    assert second.exit_code == 0, second.output
    assert "3 blocked by a foreign key from kept data (0 new;" in second.output
    with shop.session() as s:
        errors = s.scalars(
            select(DeletionRecord.deletion_error).where(DeletionRecord.deletion_error.is_not(None))
        ).all()
    assert len(errors) == 3 and all("blocked by foreign key" in e for e in errors)

    # An officer may have them tried again: still blocked, and they wait again.
    retried = shop.run("apply-deletions", "--retry-blocked", "--execute")
    assert retried.exit_code == 1
    assert "3 blocked records tried again" in retried.output
    assert "Erased 0 of 3 due records" in retried.output
    assert "3 blocked by a foreign key from kept data (3 new;" in retried.output

    # The policy changes (orders anonymized instead of deleted): the records go through.
    shop.write_policy(policy("anonymize"))
    third = shop.run("apply-deletions", "--execute")
    assert third.exit_code == 0, third.output
    assert shop.checksum("invoices") == invoices
    assert shop.app_rows("customers", "code = 'C0'")[0]["name"] is None
