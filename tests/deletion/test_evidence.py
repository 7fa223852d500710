"""Why each record is due: rule values and review columns, read live from the application DB."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import func, select

from compliance.errors import ConfigError
from compliance.policy.database_check import check_against_database
from compliance.reports.evidence import record_evidence
from compliance.store.models import ComplianceProfile, DeletionRecord
from tests.conftest import DEMO_POLICY, Deployment
from tests.dashboard.conftest import queue  # noqa: F401


def subjects_of(queue: Deployment, bucket: str) -> list[str]:  # noqa: F811
    with queue.session() as session:
        return list(
            session.scalars(
                select(ComplianceProfile.subject_id)
                .join(DeletionRecord, DeletionRecord.compliance_profile_id == ComplianceProfile.id)
                .where(DeletionRecord.bucket == bucket)
                .order_by(DeletionRecord.id)
                .limit(10)
            )
        )


def test_each_record_shows_the_values_its_rules_judged_and_the_review_columns(
    queue: Deployment,  # noqa: F811
) -> None:
    keys = subjects_of(queue, "inactive_accounts")
    count_before = queue.checksum("users")
    evidence = record_evidence(queue.datamap(), "inactive_accounts", keys)

    frame = evidence.frame.set_index("subject_id")
    assert list(frame.index) == keys
    headers = {c.name: c.header for c in evidence.columns}
    assert headers == {
        "users.last_login_at": "users.last_login_at",
        "rule_2": "Not anonymized yet",
        "users.plan": "plan",
        "users.country": "country",
    }
    users = {str(u["id"]): u for u in queue.app_rows("users", f"id IN ({','.join(keys)})")}
    for key in keys:
        seen, stored = frame.loc[key, "users.last_login_at"], users[key]["last_login_at"]
        assert pd.Timestamp(seen) == pd.Timestamp(stored)  # SQLite hands raw SQL text
        assert frame.loc[key, "users.plan"] == users[key]["plan"]
        assert frame.loc[key, "rule_2"] == "yes"
    # Read only: the application database is unchanged, and nothing was stored.
    assert queue.checksum("users") == count_before


def test_a_subject_that_stopped_matching_an_sql_rule_says_so(
    queue: Deployment,  # noqa: F811
) -> None:
    keys = subjects_of(queue, "inactive_accounts")
    with queue.app_engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE users SET email = 'anon-x' WHERE id = {int(keys[0])}")
    frame = record_evidence(queue.datamap(), "inactive_accounts", keys).frame
    assert frame.set_index("subject_id").loc[keys[0], "rule_2"] == "no"


def test_review_columns_must_exist_and_must_not_be_hidden_from_exports(
    queue: Deployment,  # noqa: F811
) -> None:
    queue.write_policy(
        DEMO_POLICY.replace(
            'review_columns = ["plan", "country"]', 'review_columns = ["plan", "password_hash"]'
        )
    )
    with pytest.raises(ConfigError, match=r"review_columns\[1\].*export_exclude"):
        check_against_database(queue.policy(), queue.app_engine)
    queue.write_policy(
        DEMO_POLICY.replace('review_columns = ["plan", "country"]', 'review_columns = ["shoe"]')
    )
    with pytest.raises(ConfigError, match=r"review_columns\[0\].*no column 'shoe'"):
        check_against_database(queue.policy(), queue.app_engine)


def test_records_from_erasure_requests_have_no_rules_to_show(
    queue: Deployment,  # noqa: F811
) -> None:
    evidence = record_evidence(queue.datamap(), "dsar_erasure", ["1", "2"])
    assert evidence.columns == ()
    assert list(evidence.frame["subject_id"]) == ["1", "2"]
    with queue.session() as session:
        assert session.scalar(select(func.count()).select_from(DeletionRecord)) > 0


def test_an_sql_rule_selecting_keys_as_text_still_shows_who_matches(
    queue: Deployment,  # noqa: F811
) -> None:
    """Keys are compared in the key column's type first (so an index serves); a rule that
    selects them as text is compared as text, and says the same."""
    rule = """SELECT id FROM users WHERE email NOT LIKE 'anon-%'"""
    as_text = """SELECT CAST(id AS VARCHAR(20)) AS id FROM users WHERE email NOT LIKE 'anon-%'"""
    assert rule in DEMO_POLICY
    keys = subjects_of(queue, "inactive_accounts")
    with queue.app_engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE users SET email = 'anon-x' WHERE id = {int(keys[0])}")
    queue.write_policy(DEMO_POLICY.replace(rule, as_text))
    frame = record_evidence(queue.datamap(), "inactive_accounts", keys).frame
    shown = frame.set_index("subject_id")["rule_2"]
    assert shown[keys[0]] == "no"
    assert set(shown[keys[1:]]) == {"yes"}
