"""A second application schema the library has never seen: a shop keyed by text customer codes.

It differs from the demo on purpose: text subject keys, a three-level via chain, a via that
names its parent column, foreign keys that make the deletion order matter on PostgreSQL, and
a retained ledger hanging off a deleted table's parent.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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
)

metadata = MetaData()
customers = Table(
    "customers",
    metadata,
    Column("code", String(20), primary_key=True),
    Column("email", String(200), unique=True),
    Column("name", String(200)),
    Column("notes", String(500)),
    Column("last_seen", DateTime),
)
orders = Table(
    "orders",
    metadata,
    Column("order_no", Integer, primary_key=True),
    Column("customer_code", ForeignKey("customers.code"), nullable=False),
    Column("placed_at", DateTime, nullable=False),
)
order_items = Table(
    "order_items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("order_no", ForeignKey("orders.order_no"), nullable=False),
    Column("sku", String(20)),
)
item_notes = Table(
    "item_notes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("item_id", ForeignKey("order_items.id"), nullable=False),
    Column("text", String(200)),
)
wishlists = Table(
    "wishlists",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("owner_email", String(200), nullable=False),  # linked by email, not by key
    Column("sku", String(20)),
)
ledger = Table(
    "ledger",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("customer_code", ForeignKey("customers.code"), nullable=False),
    Column("amount", Integer),
)

SHOP_POLICY = """
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
anonymize = { email = "hash", name = "redact", notes = "null" }

[tables.orders]
subject_column = "customer_code"
on_erasure = "delete"

[tables.order_items]
via = { table = "orders", column = "order_no" }
on_erasure = "delete"

[tables.item_notes]
via = { table = "order_items", column = "item_id" }
on_erasure = "delete"

[tables.wishlists]
via = { table = "customers", column = "owner_email", parent_column = "email" }
on_erasure = "delete"

[tables.ledger]
subject_column = "customer_code"
on_erasure = "retain"
legal_basis = "Bookkeeping"

[buckets.lapsed_customers]
description = "Customers not seen for two years"
tables = ["orders", "wishlists", "customers"]
rules = [{ table = "customers", timestamp = "last_seen", older_than_days = 730 }]
"""


def fill_shop(engine: Engine, customers_count: int = 30) -> None:
    """Even-numbered customers lapsed three years ago; odd ones were seen last week."""
    metadata.create_all(engine)
    now = datetime.now(UTC).replace(tzinfo=None)
    rows: dict[str, list[dict[str, object]]] = {t.name: [] for t in metadata.sorted_tables}
    item = note = 0
    for n in range(customers_count):
        code = f"C-{n:04d}"
        seen = now - timedelta(days=3 * 365 if n % 2 == 0 else 7)
        email = f"shopper{n}@example.net"
        customer = {"code": code, "email": email, "name": f"Shopper {n}", "notes": "VIP"}
        rows["customers"].append({**customer, "last_seen": seen})
        rows["ledger"].append({"id": n + 1, "customer_code": code, "amount": 100 + n})
        rows["wishlists"].append({"id": n + 1, "owner_email": email, "sku": "SKU-1"})
        for k in range(2):
            order_no = n * 10 + k
            rows["orders"].append({"order_no": order_no, "customer_code": code, "placed_at": seen})
            for _ in range(2):
                item += 1
                rows["order_items"].append({"id": item, "order_no": order_no, "sku": "SKU-9"})
                note += 1
                rows["item_notes"].append({"id": note, "item_id": item, "text": "gift wrap"})
    with engine.begin() as conn:
        for table in metadata.sorted_tables:
            conn.execute(insert(table), rows[table.name])
