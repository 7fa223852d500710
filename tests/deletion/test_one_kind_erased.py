"""Deleting one kind of data subject never touches another, even under the same key.

Customer '5' and employee 5 are different people: a hold on one keeps only that one, a
bucket of employees opens records for employees, and applying it erases their rows alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from compliance.audit.texts import keep_text
from compliance.deletion.holds import place_hold, plan_place_hold
from compliance.store.models import ComplianceProfile, FreeTextSubject
from tests.conftest import DPO, Backend, Deployment, make_deployment, ok, summary
from tests.two_kinds import (
    OFFICER,
    TWO_KINDS_POLICY,
    employees,
    fill_two_kinds,
    payslips,
    two_kinds_desk,
)
from tests.two_kinds import customers as customer_table


@pytest.fixture
def desk(backend: Backend, tmp_path: Path) -> Iterator[Deployment]:
    yield from two_kinds_desk(backend, tmp_path / "desk")


def hold(d: Deployment, subject_type: str, subject_id: str) -> None:
    with d.session() as s:
        plan = plan_place_hold(
            s, subject_id=subject_id, reason="Litigation", by=DPO,
            subject_type=subject_type,
        )  # fmt: skip
        place_hold(s, plan)


def profiles(d: Deployment) -> set[tuple[str, str]]:
    with d.session() as s:
        return set(
            s.execute(select(ComplianceProfile.subject_type, ComplianceProfile.subject_id)).all()
        )


def keys(d: Deployment, table: Any, column: str) -> list[Any]:
    with d.app_engine.connect() as conn:
        return sorted(conn.scalars(select(table.c[column])))


def test_a_hold_on_customer_5_does_not_keep_employee_5(desk: Deployment) -> None:
    hold(desk, "customers", "5")
    staff = summary(desk, "create-deletion-records", "--bucket", "former_staff", "--execute")
    assert (staff["created"], staff["held"]) == (2, 0)
    customers = summary(
        desk, "create-deletion-records", "--bucket", "dormant_customers", "--execute"
    )
    assert (customers["created"], customers["held"]) == (1, 1)  # ALFKI; customer 5 is held
    assert profiles(desk) == {
        ("employees", "5"),
        ("employees", "6"),
        ("customers", "5"),
        ("customers", "ALFKI"),
    }


def test_a_hold_on_employee_5_keeps_only_employee_5(desk: Deployment) -> None:
    hold(desk, "employees", "5")
    staff = summary(desk, "create-deletion-records", "--bucket", "former_staff", "--execute")
    assert (staff["created"], staff["held"]) == (1, 1)
    customers = summary(
        desk, "create-deletion-records", "--bucket", "dormant_customers", "--execute"
    )
    assert (customers["created"], customers["held"]) == (2, 0)


def test_an_accepted_employees_batch_erases_employees_only(desk: Deployment) -> None:
    before = keys(desk, customer_table, "customer_id")
    for bucket in ("former_staff",):
        ok(desk.run("create-deletion-records", "--bucket", bucket, "--execute"))
        ok(desk.run("create-deletion-batches", "--bucket", bucket, "--execute"))
        ok(
            desk.run(
                "review-batch", "--all-pending", "--bucket", bucket, "--accept", "--reviewer",
                OFFICER, "--execute",
            )
        )  # fmt: skip
    applied = summary(desk, "apply-deletions", "--execute")
    assert applied["applied"] == 2
    assert keys(desk, employees, "employee_id") == [7]
    assert keys(desk, payslips, "employee_id") == [7]
    assert keys(desk, customer_table, "customer_id") == before  # customer '5' is untouched
    with desk.session() as s:
        assert s.scalar(select(func.count()).select_from(ComplianceProfile)) == 2


def test_subjects_of_a_kind_the_policy_no_longer_declares_stop_every_job(
    backend: Backend, tmp_path: Path
) -> None:
    """A desk moving from one [subjects] section to [subjects.NAME] ones: its hold on '5' was
    made as kind 'default'; read as nobody's, employee 5 would be erased despite it."""
    single = TWO_KINDS_POLICY.split("[subjects.customers]")[0] + (
        '[subjects]\ntable = "employees"\nkey = "employee_id"\n\n'
        '[tables.employees]\nsubject_column = "employee_id"\non_erasure = "delete"\n\n'
        '[buckets.former_staff]\ntables = ["employees"]\n'
        'rules = [{ sql = "SELECT employee_id FROM employees WHERE left_at IS NOT NULL" }]\n\n'
        '[roles]\ncompliance_officer = ["dpo@example.com"]\n'
    )
    d = make_deployment(backend, tmp_path / "moving", single)
    try:
        fill_two_kinds(d.app_engine)
        hold(d, "default", "5")
        d.write_policy(TWO_KINDS_POLICY)
        refused = d.run("create-deletion-records", "--bucket", "former_staff", "--execute")
        assert refused.exit_code == 2
        assert (
            "the compliance database holds subjects of kind 'default', which the policy no "
            "longer declares (it declares customers, employees)" in refused.output
        )
        with d.session() as s:  # a note typed then, tied to the key as kind 'default'
            keep_text(s, "Tribunal claim", subjects=[("default", "5")])
            s.commit()
        for model in (ComplianceProfile, FreeTextSubject):  # the operator says which kind
            with d.engine.begin() as conn:
                assert d.run("create-deletion-records", "--bucket", "former_staff").exit_code == 2
                conn.execute(
                    update(model)
                    .where(model.subject_type == "default")
                    .values(subject_type="employees")
                )
        staff = summary(d, "create-deletion-records", "--bucket", "former_staff", "--execute")
        assert (staff["created"], staff["held"]) == (1, 1)  # employee 5 is still held
    finally:
        d.dispose()
