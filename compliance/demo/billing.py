"""The demo billing database: a second SQL system, so erasure fans out on the first run.

A separate database on purpose (``[systems.billing]`` in the demo policy): the billing
provider's customer records, keyed by the application's user id, with notes hanging off
them. Erasure anonymizes the customer and deletes the notes; the application database's
invoices stay where the law keeps them.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from compliance import clock
from compliance.demo.generate import create_empty_schema, insert_rows, naive_utc

metadata = MetaData()
billing_customers = Table(
    "billing_customers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, nullable=False, unique=True),
    Column("billing_email", String(255)),
    Column("company", String(255)),
    Column("vat_id", String(32)),
    Column("card_last4", String(4)),
    Column("updated_at", DateTime, nullable=False),
)
billing_notes = Table(
    "billing_notes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("customer_id", ForeignKey("billing_customers.id"), nullable=False, index=True),
    Column("note", Text, nullable=False),
    Column("created_at", DateTime, nullable=False),
)


def create_demo_billing_database(
    engine: Engine, *, users_count: int = 3000, seed: int = 2026, now: datetime | None = None
) -> dict[str, int]:
    """Create and fill the billing schema: about half the users are paying customers."""
    create_empty_schema(engine, metadata, billing_customers, database="billing", rows="customers")
    rng = random.Random(seed * 31 + 7)
    moment = naive_utc(now or clock.now())
    customers: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    for uid in range(1, users_count + 1):
        if rng.random() < 0.5:
            continue
        cid = len(customers) + 1
        customers.append(
            {
                "id": cid,
                "user_id": uid,
                "billing_email": f"billing+{uid}@example.org",
                "company": rng.choice([None, "Acme GmbH", "Nordlicht AB", "Riviera SRL"]),
                "vat_id": f"DE{rng.randint(100000000, 999999999)}" if rng.random() < 0.4 else None,
                "card_last4": f"{rng.randint(0, 9999):04d}",
                "updated_at": moment - timedelta(days=rng.uniform(0, 900)),
            }
        )
        for _ in range(rng.randint(0, 2)):
            notes.append(
                {
                    "id": len(notes) + 1,
                    "customer_id": cid,
                    "note": rng.choice(["Asked for a refund", "Card expired", "Upgraded plan"]),
                    "created_at": moment - timedelta(days=rng.uniform(0, 900)),
                }
            )
    with engine.begin() as conn:
        insert_rows(conn, billing_customers, customers)
        insert_rows(conn, billing_notes, notes)
    return {"billing_customers": len(customers), "billing_notes": len(notes)}
