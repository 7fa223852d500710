"""The policy file: every mistake is one clear error naming the key, before any data is touched."""

from __future__ import annotations

import tomllib

import pytest

from compliance.errors import ConfigError
from compliance.policy.database_check import check_against_database
from compliance.policy.loader import parse_policy
from compliance.policy.model import AgeRule, SqlRule
from tests.conftest import DEMO_POLICY, Deployment


def demo_data() -> dict:
    return tomllib.loads(DEMO_POLICY)


def with_change(change) -> dict:
    data = demo_data()
    change(data)
    return data


def test_the_shipped_demo_policy_loads_with_every_bucket() -> None:
    policy = parse_policy(demo_data(), env={})
    assert set(policy.buckets) == {"stale_support_tickets", "inactive_accounts", "closed_accounts"}
    stale = policy.buckets["stale_support_tickets"]
    assert stale.rules[0] == AgeRule("support_tickets", "updated_at", 365)
    assert isinstance(stale.rules[1], SqlRule)
    assert policy.retained_tables == {"invoices", "payments"}
    assert policy.tables["workflow_runs"].via.table == "workflows"


def test_the_environment_wins_over_the_file_for_database_urls() -> None:
    policy = parse_policy(
        demo_data(),
        env={
            "COMPLIANCE_DATABASE_URL": "postgresql://x/c",
            "COMPLIANCE_APP_DATABASE_URL": "sqlite://",
        },
    )
    assert policy.database_url == "postgresql://x/c"
    assert policy.app_database_url == "sqlite://"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["buckets"]["stale_support_tickets"].update(tables=["invoices"]),
            "buckets.stale_support_tickets.tables[0]: 'invoices' is a retain table",
        ),
        (
            lambda d: d["retention"].update(
                bills={"table": "payments", "timestamp": "paid_at", "days": 1}
            ),
            "retention.bills.table: 'payments' is a retain table",
        ),
        (
            lambda d: d["tables"]["workflows"].update(on_erasure="shred"),
            "tables.workflows.on_erasure: unknown action 'shred'",
        ),
        (
            lambda d: d["tables"]["users"]["anonymize"].update(email="scramble"),
            "tables.users.anonymize.email: unknown strategy 'scramble'",
        ),
        (
            lambda d: d["tables"].update(
                workflows={"via": {"table": "workflow_runs", "column": "x"}, "on_erasure": "delete"}
            ),
            "tables.workflow_runs.via.table: the via chain loops "
            "(workflows -> workflow_runs -> workflows)",
        ),
        (
            lambda d: d["tables"]["workflow_runs"].update(
                via={"table": "pipelines", "column": "x"}
            ),
            "tables.workflow_runs.via.table: 'pipelines' is not in the data map",
        ),
        (
            lambda d: d["buckets"]["closed_accounts"].update(rules=[{"table": "users"}]),
            "buckets.closed_accounts.rules[0]: a rule needs either sql or table, timestamp and "
            "older_than_days",
        ),
        (
            lambda d: d["buckets"]["closed_accounts"].update(rules=[{"sql": "DELETE FROM users"}]),
            "buckets.closed_accounts.rules[0].sql: the sql rule must be a SELECT statement",
        ),
        (
            lambda d: d["buckets"]["closed_accounts"].update(
                rules=[{"sql": "SELECT id FROM users; DROP TABLE users"}]
            ),
            "buckets.closed_accounts.rules[0].sql: the sql rule must be a single SELECT",
        ),
        (
            lambda d: d["buckets"]["closed_accounts"].update(
                rules=[{"sql": "WITH x AS (DELETE FROM users RETURNING id) SELECT id FROM x"}]
            ),
            "buckets.closed_accounts.rules[0].sql: the sql rule must only read, "
            "but it contains 'DELETE'",
        ),
        (
            lambda d: d["buckets"]["closed_accounts"].update(tables=["orders"]),
            "buckets.closed_accounts.tables[0]: 'orders' is not in the data map",
        ),
        (
            lambda d: d["buckets"]["closed_accounts"].update(grace_days=-1),
            "buckets.closed_accounts.grace_days: must be 0 or more",
        ),
        (
            lambda d: d["buckets"]["closed_accounts"].update(olderthan=3),
            "buckets.closed_accounts.olderthan: unknown key",
        ),
        (
            lambda d: d.setdefault("exports", {}).update(dir=7),
            "exports.dir: expected str, got 7",
        ),
        (  # a misspelt url would otherwise leave the default database in use, silently
            lambda d: d.setdefault("app_database", {}).update(ulr="sqlite:///shop.db"),
            "app_database.ulr: unknown key (allowed: url)",
        ),
    ],
)
def test_a_bad_policy_is_one_error_naming_the_key(change, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_policy(with_change(change), env={})
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_a_sql_rule_may_quote_write_words_inside_strings() -> None:
    data = with_change(
        lambda d: d["buckets"]["closed_accounts"].update(
            rules=[{"sql": "SELECT id FROM users WHERE note = 'please delete me';"}]
        )
    )
    rule = parse_policy(data, env={}).buckets["closed_accounts"].rules[0]
    assert rule == SqlRule("SELECT id FROM users WHERE note = 'please delete me'")


def test_a_table_missing_from_the_application_database_is_named(demo: Deployment) -> None:
    demo.write_policy(
        DEMO_POLICY
        + '\n[tables.invoices_archive]\nsubject_column = "user_id"\non_erasure = "retain"\n'
    )
    with pytest.raises(ConfigError, match=r"^tables.invoices_archive: no such table"):
        check_against_database(demo.policy(), demo.app_engine)


def test_a_column_missing_from_the_application_database_is_named(demo: Deployment) -> None:
    demo.write_policy(DEMO_POLICY.replace('phone = "null"', 'mobile = "null"'))
    with pytest.raises(ConfigError) as caught:
        check_against_database(demo.policy(), demo.app_engine)
    assert str(caught.value) == (
        "tables.users.anonymize.mobile: table 'users' has no column 'mobile' in the "
        "application database"
    )


def test_a_rule_timestamp_missing_from_the_database_is_named(demo: Deployment) -> None:
    demo.write_policy(
        DEMO_POLICY.replace(
            'timestamp = "updated_at", older_than_days = 365',
            'timestamp = "touched_at", older_than_days = 365',
        )
    )
    with pytest.raises(
        ConfigError,
        match=r"^buckets.stale_support_tickets.rules\[0\].timestamp: table 'support_tickets' "
        "has no column 'touched_at'",
    ):
        check_against_database(demo.policy(), demo.app_engine)


def test_a_retention_entry_on_a_missing_table_is_a_warning_not_an_error(demo: Deployment) -> None:
    demo.write_policy(
        DEMO_POLICY
        + '\n[retention.old_sessions]\ntable = "sessions"\ntimestamp = "created_at"\ndays = 7\n'
    )
    warnings = check_against_database(demo.policy(), demo.app_engine)
    assert warnings == ["retention.old_sessions.table: no table 'sessions'; entry skipped"]
