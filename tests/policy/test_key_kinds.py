"""A table links to its subject by the same kind of key, or the policy is refused at load.

Northwind's customers are keyed by text ('ALFKI'), its employees by a smallint: mapping
employees under the customer subject loaded without a word, and every lookup then compared
text with numbers (no row on SQLite, an error on PostgreSQL). Now the check that runs before
every job names both columns and both types.
"""

from __future__ import annotations

import tomllib

import pytest
from sqlalchemy import Column, ForeignKey, Integer, MetaData, SmallInteger, String, Table, Text

from compliance.errors import ConfigError
from compliance.policy.database_check import check_against_database
from compliance.policy.loader import parse_policy
from compliance.store.engines import make_engine
from tests.conftest import Backend

metadata = MetaData()
Table("customers", metadata, Column("customer_id", String(5), primary_key=True),
      Column("email", String(100)))  # fmt: skip
Table("orders", metadata, Column("order_id", Integer, primary_key=True),
      Column("customer_id", String(5), ForeignKey("customers.customer_id")))  # fmt: skip
Table("order_notes", metadata, Column("id", Integer, primary_key=True),
      Column("order_ref", Text))  # fmt: skip
Table("employees", metadata, Column("employee_id", SmallInteger, primary_key=True),
      Column("first_name", String(10)))  # fmt: skip

POLICY = """
[database]
url = "sqlite:///var/compliance.db"
[app_database]
url = "sqlite:///var/app.db"

[subjects]
table = "customers"
key = "customer_id"

[tables.customers]
subject_column = "customer_id"
on_erasure = "delete"

[tables.orders]
subject_column = "customer_id"
on_erasure = "delete"
"""
EMPLOYEES_AS_CUSTOMERS = """
[tables.employees]
subject_column = "employee_id"
on_erasure = "delete"
"""
NOTES_BY_TEXT = """
[tables.order_notes]
via = { table = "orders", column = "order_ref" }
on_erasure = "delete"
"""


def check(backend: Backend, body: str) -> list[str]:
    engine = make_engine(backend.url("app"))
    try:
        metadata.create_all(engine)
        return check_against_database(parse_policy(tomllib.loads(body), env={}), engine)
    finally:
        engine.dispose()


def test_tables_keyed_like_their_subject_load(backend: Backend) -> None:
    assert check(backend, POLICY) == []


def test_a_table_keyed_by_numbers_under_a_subject_keyed_by_text_is_refused(
    backend: Backend,
) -> None:
    with pytest.raises(ConfigError) as refused:
        check(backend, POLICY + EMPLOYEES_AS_CUSTOMERS)
    message = str(refused.value)
    assert message.startswith("tables.employees.subject_column: 'employees.employee_id' is")
    assert (
        "(a whole number)" in message and "'customers.customer_id' is VARCHAR(5) (text)" in message
    )


def test_a_via_link_of_text_to_a_numeric_key_is_refused(backend: Backend) -> None:
    with pytest.raises(ConfigError) as refused:
        check(backend, POLICY + NOTES_BY_TEXT)
    message = str(refused.value)
    assert message.startswith("tables.order_notes.via.column: 'order_notes.order_ref' is")
    assert "(text)" in message and "'orders.order_id' is INTEGER (a whole number)" in message
