"""A schema holding two kinds of data subject, as Northwind does: customers and employees.

Customers are keyed by text codes, employees by a smallint; customer '5' and employee 5 are
two different people, and Alice is both a customer (ALFKI) and an employee (5), under the
same email. Each kind has its own bucket.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    insert,
)

from tests.conftest import Backend, Deployment, make_deployment

metadata = MetaData()
customers = Table(
    "customers",
    metadata,
    Column("customer_id", String(5), primary_key=True),
    Column("email", String(100)),
    Column("company", String(40)),
)
orders = Table(
    "orders",
    metadata,
    Column("order_id", Integer, primary_key=True),
    Column("customer_id", ForeignKey("customers.customer_id"), nullable=False),
    Column("placed_at", DateTime, nullable=False),
)
employees = Table(
    "employees",
    metadata,
    Column("employee_id", SmallInteger, primary_key=True),
    Column("email", String(100)),
    Column("first_name", String(10)),
    Column("left_at", DateTime),
)
payslips = Table(
    "payslips",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("employee_id", ForeignKey("employees.employee_id"), nullable=False),
    Column("amount", Integer),
)

ALICE = "alice@example.com"
OFFICER = "dpo@example.com"
SUPPORT = "support@example.com"

TWO_KINDS_POLICY = """
[database]
url = "sqlite:///var/compliance.db"
[app_database]
url = "sqlite:///var/demo_app.db"

[subjects.customers]
table = "customers"
key = "customer_id"
email = "email"

[subjects.employees]
table = "employees"
key = "employee_id"
email = "email"

[tables.customers]
subject_column = "customer_id"
on_erasure = "delete"

[tables.orders]
via = { table = "customers", column = "customer_id" }
on_erasure = "delete"

[tables.employees]
subject_column = "employee_id"
on_erasure = "delete"

[tables.payslips]
via = { table = "employees", column = "employee_id" }
on_erasure = "delete"

[buckets.former_staff]
description = "Employees who left"
tables = ["employees"]
rules = [{ sql = "SELECT employee_id FROM employees WHERE left_at IS NOT NULL" }]

[buckets.dormant_customers]
description = "Customers without orders"
tables = ["customers"]
rules = [{ sql = "SELECT customer_id FROM customers WHERE customer_id <> 'ANTON'" }]

[roles]
compliance_officer = ["dpo@example.com"]
support = ["support@example.com"]
"""


def fill_two_kinds(engine: Engine) -> None:
    left = datetime(2020, 1, 31, tzinfo=UTC).replace(tzinfo=None)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(customers),
            [
                {"customer_id": "ALFKI", "email": ALICE, "company": "Alfreds"},
                {"customer_id": "5", "email": "bob@example.com", "company": "Bob's"},
                {"customer_id": "ANTON", "email": "anton@example.com", "company": "Antonio"},
            ],
        )
        conn.execute(
            insert(orders),
            [{"order_id": 1, "customer_id": "ANTON", "placed_at": left}],
        )
        conn.execute(
            insert(employees),
            [
                {"employee_id": 5, "email": ALICE, "first_name": "Alice", "left_at": left},
                {"employee_id": 6, "email": "carol@example.com", "first_name": "Carol",
                 "left_at": left},
                {"employee_id": 7, "email": "dave@example.com", "first_name": "Dave",
                 "left_at": None},
            ],
        )  # fmt: skip
        conn.execute(
            insert(payslips),
            [
                {"id": 1, "employee_id": 5, "amount": 100},
                {"id": 2, "employee_id": 6, "amount": 200},
                {"id": 3, "employee_id": 7, "amount": 300},
            ],
        )


def two_kinds_desk(
    backend: Backend, directory: Path, policy: str = TWO_KINDS_POLICY
) -> Iterator[Deployment]:
    """A desk on this schema (for a fixture to ``yield from``), disposed of afterwards."""
    d = make_deployment(backend, directory, policy)
    fill_two_kinds(d.app_engine)
    yield d
    d.dispose()
