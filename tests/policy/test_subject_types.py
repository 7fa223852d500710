"""Several kinds of data subject in one policy: ``[subjects.NAME]``, one per kind.

A company's customers and its employees live in different tables with different keys
(Northwind: customers by text, employees by a smallint). Each table's data belongs to one
kind, a bucket erases one kind, and erasure requests about each kind have their own bucket.
The old single ``[subjects]`` section is one kind named ``default``.
"""

from __future__ import annotations

import tomllib

import pytest
from sqlalchemy import Column, ForeignKey, Integer, MetaData, SmallInteger, String, Table

from compliance.errors import ConfigError
from compliance.policy.database_check import check_against_database
from compliance.policy.loader import parse_policy
from compliance.policy.model import Policy
from compliance.store.engines import make_engine
from tests.conftest import Backend

metadata = MetaData()
Table("customers", metadata, Column("customer_id", String(5), primary_key=True),
      Column("email", String(100)))  # fmt: skip
Table("orders", metadata, Column("order_id", Integer, primary_key=True),
      Column("customer_id", String(5), ForeignKey("customers.customer_id")))  # fmt: skip
Table("employees", metadata, Column("employee_id", SmallInteger, primary_key=True),
      Column("email", String(100)))  # fmt: skip
Table("payslips", metadata, Column("id", Integer, primary_key=True),
      Column("employee_id", SmallInteger, ForeignKey("employees.employee_id")))  # fmt: skip

HEAD = """
[database]
url = "sqlite:///var/compliance.db"
[app_database]
url = "sqlite:///var/app.db"
"""
TWO_KINDS = (
    HEAD
    + """
[subjects.customers]
table = "customers"
key = "customer_id"

[subjects.employees]
table = "employees"
key = "employee_id"

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
subject_column = "employee_id"
subject = "employees"
on_erasure = "delete"

[buckets.former_staff]
tables = ["employees", "payslips"]
rules = [{ sql = "SELECT employee_id FROM employees" }]
"""
)


def load(body: str) -> Policy:
    return parse_policy(tomllib.loads(body), env={})


def refusal(body: str) -> str:
    with pytest.raises(ConfigError) as refused:
        load(body)
    return str(refused.value)


def test_each_table_and_bucket_belongs_to_one_kind_of_subject() -> None:
    policy = load(TWO_KINDS)
    assert list(policy.subject_types) == ["customers", "employees"]
    assert {n: t.subject for n, t in policy.tables.items()} == {
        "customers": "customers",
        "orders": "customers",  # through its via chain
        "employees": "employees",  # the table listing them
        "payslips": "employees",  # named
    }
    assert policy.bucket("former_staff").subject == "employees"
    assert policy.subject_erasing_buckets == ("former_staff",)


def test_erasure_requests_about_each_kind_have_their_own_bucket() -> None:
    policy = load(TWO_KINDS)
    assert policy.erasure_buckets == {
        "dsar_erasure_customers": "customers",
        "dsar_erasure_employees": "employees",
    }
    customers = policy.bucket("dsar_erasure_customers")
    assert customers.tables == ("customers", "orders")
    assert customers.subject == "customers"
    assert policy.bucket("dsar_erasure_employees").tables == ("employees", "payslips")
    with pytest.raises(Exception, match="known: dsar_erasure_customers, dsar_erasure_employees"):
        policy.bucket("dsar_erasure")


def test_one_plain_subjects_section_is_the_kind_named_default() -> None:
    body = HEAD + (
        '[subjects]\ntable = "customers"\nkey = "customer_id"\n'
        '[tables.customers]\nsubject_column = "customer_id"\non_erasure = "delete"\n'
    )
    policy = load(body)
    assert list(policy.subject_types) == ["default"]
    assert policy.subjects.table == "customers"
    assert policy.tables["customers"].subject == "default"
    assert policy.erasure_buckets == {"dsar_erasure": "default"}


def test_a_bucket_over_two_kinds_of_subject_is_refused() -> None:
    body = TWO_KINDS.replace(
        'tables = ["employees", "payslips"]', 'tables = ["employees", "customers"]'
    )
    assert refusal(body) == (
        "buckets.former_staff.tables: 'employees' holds 'employees' data and 'customers' holds "
        "'customers' data; a bucket erases one kind of data subject"
    )


def test_a_bucket_naming_another_kind_than_its_tables_is_refused() -> None:
    body = TWO_KINDS.replace(
        'tables = ["employees", "payslips"]', 'tables = ["employees"]\nsubject = "customers"'
    )
    assert refusal(body) == (
        "buckets.former_staff.subject: 'customers', but its tables hold 'employees' data"
    )


def test_a_linked_table_that_does_not_say_whose_data_it_holds_is_refused() -> None:
    body = TWO_KINDS.replace('subject = "employees"\non_erasure', "on_erasure")
    assert refusal(body) == (
        "tables.payslips.subject: missing; with more than one kind of data subject, a table "
        "linked by subject_column names whose data it holds (one of customers, employees)"
    )


def test_an_unknown_kind_and_a_via_table_claiming_another_kind_are_refused() -> None:
    unknown = TWO_KINDS.replace('subject = "employees"', 'subject = "applicants"')
    assert refusal(unknown) == (
        "tables.payslips.subject: 'applicants' is not a kind of data subject (customers, employees)"
    )
    claiming = TWO_KINDS.replace(
        'column = "customer_id" }\non_erasure = "delete"',
        'column = "customer_id" }\non_erasure = "delete"\nsubject = "employees"',
    )
    assert refusal(claiming) == (
        "tables.orders.subject: 'employees', but its via chain ends at 'customers', which "
        "holds 'customers' data"
    )


def test_the_subjects_table_of_one_kind_cannot_be_given_to_another() -> None:
    body = TWO_KINDS.replace(
        '[tables.employees]\nsubject_column = "employee_id"',
        '[tables.employees]\nsubject_column = "employee_id"\nsubject = "customers"',
    )
    assert refusal(body) == (
        "tables.employees.subject: 'employees' lists the 'employees' subjects, so its data is "
        "theirs, not 'customers'"
    )


def test_plain_and_named_subjects_sections_do_not_mix() -> None:
    body = TWO_KINDS.replace(
        "[subjects.customers]", '[subjects]\nemail = "email"\n[subjects.customers]'
    )
    assert refusal(body) == (
        "subjects.email: either one [subjects] section or one [subjects.NAME] section per "
        "kind of data subject, not both"
    )


def test_a_kind_needs_its_own_table() -> None:
    missing = TWO_KINDS.replace('table = "employees"\nkey', "key")
    assert refusal(missing) == (
        "subjects.employees.table: missing (the table listing these subjects)"
    )
    shared = TWO_KINDS.replace('table = "employees"\nkey', 'table = "customers"\nkey')
    assert refusal(shared) == (
        "subjects.customers.table: 'customers' lists another kind of data subject too; each "
        "kind has its own table"
    )


def test_erasure_request_bucket_names_are_reserved() -> None:
    body = TWO_KINDS.replace("[buckets.former_staff]", "[buckets.dsar_erasure_employees]")
    assert refusal(body) == (
        "buckets.dsar_erasure_employees: reserved for erasure requests; choose another name"
    )


def check(backend: Backend, body: str) -> list[str]:
    engine = make_engine(backend.url("app"))
    try:
        metadata.create_all(engine)
        return check_against_database(load(body), engine)
    finally:
        engine.dispose()


def test_each_kind_keyed_its_own_way_passes_the_database_check(backend: Backend) -> None:
    """Text keys for customers and whole numbers for employees: each table is compared with
    its own kind's key, so both load where one subject type refused employees."""
    assert check(backend, TWO_KINDS) == []


def test_a_table_keyed_unlike_its_own_kind_is_refused_naming_that_kind(backend: Backend) -> None:
    body = TWO_KINDS.replace(
        'subject_column = "employee_id"\nsubject = "employees"',
        'subject_column = "employee_id"\nsubject = "customers"',
    ).replace('tables = ["employees", "payslips"]', 'tables = ["employees"]')
    with pytest.raises(ConfigError) as refused:
        check(backend, body)
    message = str(refused.value)
    assert message.startswith("tables.payslips.subject_column: 'payslips.employee_id' is")
    assert "but the 'customers' subject key 'customers.customer_id' is VARCHAR(5)" in message


def test_an_age_rule_over_another_kind_s_table_is_refused() -> None:
    """Customer '5''s old orders must not make employee 5 due."""
    body = TWO_KINDS.replace(
        'rules = [{ sql = "SELECT employee_id FROM employees" }]',
        'rules = [{ table = "orders", timestamp = "placed_at", older_than_days = 30 }]',
    )
    assert refusal(body) == (
        "buckets.former_staff.rules[0].table: 'orders' holds 'customers' data, but the bucket "
        "erases 'employees' subjects: its keys would name other people"
    )
