"""The data-map engine on two schemas: the demo product and a shop it has never seen."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from compliance.deletion.erase import ERASERS, erase, impact
from compliance.policy.datamap import TableAction
from compliance.policy.strategies import ErasureAction, HashStrategy
from tests.conftest import Backend, Deployment, make_deployment
from tests.shop import SHOP_POLICY, fill_shop

SHOP_KEY = "shop-hash-key-0123456789abcdef-0123456789"


@pytest.fixture
def shop(backend: Backend, tmp_path, monkeypatch: pytest.MonkeyPatch) -> Deployment:
    monkeypatch.setenv("COMPLIANCE_HASH_KEY", SHOP_KEY)  # not demo mode: hash needs its key
    d = make_deployment(backend, tmp_path / "shop", SHOP_POLICY)
    fill_shop(d.app_engine)
    yield d
    d.dispose()


def count(d: Deployment, sql: str) -> int:
    with d.app_engine.connect() as conn:
        return conn.execute(text(sql)).scalar_one()


def test_the_erasure_plan_erases_children_before_parents(shop: Deployment) -> None:
    plan = shop.datamap().erasure_plan(["orders", "wishlists", "customers"])
    order = [step.table for step in plan]
    assert set(order) == {"item_notes", "order_items", "orders", "wishlists", "customers"}
    assert order.index("item_notes") < order.index("order_items") < order.index("orders")
    assert order.index("orders") < order.index("customers")
    assert order.index("wishlists") < order.index("customers")
    assert "ledger" not in order
    assert {s.table: s.action for s in plan}["customers"] == "anonymize"


def test_erasing_a_subject_reaches_rows_through_via_chains_of_any_depth(shop: Deployment) -> None:
    datamap = shop.datamap()
    plan = datamap.erasure_plan(["orders", "wishlists", "customers"])
    ledger_before = shop.checksum("ledger")
    with shop.app_engine.begin() as conn:
        rows = erase(datamap, conn, plan, ["C-0000", "C-0002"])
    assert rows == {
        "item_notes": 8,
        "order_items": 8,
        "orders": 4,
        "wishlists": 2,
        "customers": 2,
    }
    assert (
        count(shop, "SELECT count(*) FROM orders WHERE customer_code IN ('C-0000', 'C-0002')") == 0
    )
    assert count(shop, "SELECT count(*) FROM orders") == 56
    assert count(shop, "SELECT count(*) FROM item_notes") == 112
    assert count(shop, "SELECT count(*) FROM wishlists") == 28
    erased = shop.app_rows("customers", "code = 'C-0000'")[0]
    assert erased["email"] == HashStrategy(SHOP_KEY.encode()).transform("shopper0@example.net")
    assert erased["name"] == "[REDACTED]"
    assert erased["notes"] is None
    untouched = shop.app_rows("customers", "code = 'C-0001'")[0]
    assert untouched["email"] == "shopper1@example.net"
    assert shop.checksum("ledger") == ledger_before


def test_erasing_twice_changes_nothing_the_second_time(shop: Deployment) -> None:
    datamap = shop.datamap()
    plan = datamap.erasure_plan(["orders", "wishlists", "customers"])
    with shop.app_engine.begin() as conn:
        erase(datamap, conn, plan, ["C-0004"])
    first = shop.checksum("customers", "orders", "order_items", "item_notes", "wishlists")
    with shop.app_engine.begin() as conn:
        again = erase(datamap, conn, plan, ["C-0004"])
    assert again["orders"] == 0
    assert shop.checksum("customers", "orders", "order_items", "item_notes", "wishlists") == first


def test_the_impact_preview_counts_without_changing_anything(shop: Deployment) -> None:
    datamap = shop.datamap()
    before = shop.checksum("customers", "orders", "order_items", "item_notes", "ledger")
    with shop.app_engine.connect() as conn:
        found = impact(datamap, conn, ["orders", "customers"], ["C-0000", "C-0001", "C-0002"])
    by_table = {row["table"]: (row["action"], row["rows"]) for row in found}
    assert by_table == {
        "item_notes": ("delete", 12),
        "order_items": ("delete", 12),
        "orders": ("delete", 6),
        "wishlists": ("delete", 3),
        "customers": ("anonymize", 3),
        "ledger": ("retain", 3),
    }
    assert shop.checksum("customers", "orders", "order_items", "item_notes", "ledger") == before


def test_subject_rows_leave_out_excluded_columns_and_other_subjects(demo: Deployment) -> None:
    datamap = demo.datamap()
    with demo.app_engine.connect() as conn:
        columns, rows = datamap.subject_rows(conn, "users", ["7"], exclude=["password_hash"])
        _, runs = datamap.subject_rows(conn, "workflow_runs", ["7"])
        expected_runs = conn.execute(
            text(
                "SELECT count(*) FROM workflow_runs r JOIN workflows w ON w.id = r.workflow_id "
                "WHERE w.user_id = 7"
            )
        ).scalar_one()
    assert "password_hash" not in columns
    assert [r["id"] for r in rows] == [7]
    assert len(runs) == expected_runs


def test_demo_erasure_deletes_in_foreign_key_order_and_keeps_billing(demo: Deployment) -> None:
    datamap = demo.datamap()
    policy = demo.policy()
    billing = demo.checksum("invoices", "payments")
    keys = [str(r["id"]) for r in demo.app_rows("users", "id <= 40")]
    for system, steps in datamap.plans_by_system(policy.buckets["closed_accounts"].tables).items():
        with datamap.engine_for(system).begin() as conn:
            erase(datamap, conn, steps, keys)
    assert count(demo, "SELECT count(*) FROM workflows WHERE user_id <= 40") == 0
    assert count(demo, "SELECT count(*) FROM activity_logs WHERE user_id <= 40") == 0
    assert count(demo, "SELECT count(*) FROM users WHERE id <= 40 AND full_name IS NOT NULL") == 0
    assert count(demo, "SELECT count(*) FROM users WHERE id > 40 AND full_name IS NULL") == 0
    assert demo.checksum("invoices", "payments") == billing


def test_every_erasure_action_the_policy_names_has_one_eraser_and_retain_changes_nothing(
    shop: Deployment,
) -> None:
    assert set(ERASERS) == set(ErasureAction)
    policy = shop.policy()
    assert {t.on_erasure for t in policy.tables.values()} <= set(ErasureAction)
    kept = next(n for n, t in policy.tables.items() if t.on_erasure == ErasureAction.RETAIN)
    datamap = shop.datamap()
    before = count(shop, f"SELECT count(*) FROM {kept}")
    step = TableAction(kept, ErasureAction.RETAIN, datamap.system_of(kept))
    with pytest.raises(AssertionError, match="retained"), shop.app_engine.begin() as conn:
        erase(datamap, conn, [step], ["C-0000"])
    assert count(shop, f"SELECT count(*) FROM {kept}") == before
