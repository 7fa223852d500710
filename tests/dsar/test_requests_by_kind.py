"""Requests in a desk serving two kinds of data subject: each request names its kind.

Alice is customer ALFKI and employee 5, under one email: asked by email, she gets one
request per kind, each decided, erased and exported on its own. Asked by id, the kind must
be named, since customer '5' and employee 5 are two people.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, insert, select

from compliance.audit.subject_keys import hashed_key
from compliance.dsar.rectification import plan_rectification
from compliance.reports.dsar_stats import dsar_split
from compliance.storage import export_store
from compliance.store.models import ComplianceProfile, DsarRequest
from tests.conftest import Backend, Deployment, make_deployment, ok, summary
from tests.two_kinds import (
    ALICE,
    OFFICER,
    SUPPORT,
    TWO_KINDS_POLICY,
    customers,
    employees,
    fill_two_kinds,
    payslips,
    two_kinds_desk,
)
from tests.webhook_server import webhook_service

IDENTITY = ("--identity-method", "id_document", "--identity-check", "passport seen")


@pytest.fixture
def desk(backend: Backend, tmp_path: Path) -> Iterator[Deployment]:
    yield from two_kinds_desk(backend, tmp_path / "desk")


def submit(d: Deployment, kind: str, *who: str) -> dict[str, Any]:
    return summary(
        d, "submit-dsar", "--kind", kind, *who, "--requested-by", SUPPORT, *IDENTITY, "--execute"
    )


def requests(d: Deployment) -> list[tuple[str, str, str]]:
    with d.session() as s:
        rows = s.execute(
            select(DsarRequest.subject_type, DsarRequest.subject_id, DsarRequest.kind).order_by(
                DsarRequest.id
            )
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def keys(d: Deployment, table: Any, column: str) -> list[Any]:
    with d.app_engine.connect() as conn:
        return sorted(conn.scalars(select(table.c[column])))


def test_an_email_found_in_two_kinds_gets_one_request_per_kind(desk: Deployment) -> None:
    out = submit(desk, "access", "--email", ALICE)
    made = [(r["subject_type"], r["subject_id"], r["created"]) for r in out["requests"]]
    assert made == [("customers", "ALFKI", True), ("employees", "5", True)]
    assert len({r["reference"] for r in out["requests"]}) == 2  # one desk, unique references
    assert requests(desk) == [("customers", "ALFKI", "access"), ("employees", "5", "access")]
    again = submit(desk, "access", "--email", ALICE)  # both already open: returned, not added
    assert [r["created"] for r in again["requests"]] == [False, False]
    assert len(requests(desk)) == 2


def test_an_id_alone_is_refused_where_it_could_be_either_kind(desk: Deployment) -> None:
    refused = desk.run(
        "submit-dsar", "--kind", "erasure", "--subject-id", "5", "--requested-by", SUPPORT,
        *IDENTITY, "--execute",
    )  # fmt: skip
    assert refused.exit_code == 2
    assert (
        "--subject-type is missing: this desk serves several kinds of data subject "
        "(customers, employees); say which" in refused.output
    )
    unknown = desk.run(
        "submit-dsar", "--kind", "erasure", "--subject-id", "5", "--subject-type", "staff",
        "--requested-by", SUPPORT, *IDENTITY, "--execute",
    )  # fmt: skip
    assert unknown.exit_code == 2
    assert "--subject-type must be one of customers, employees, got 'staff'" in unknown.output
    assert requests(desk) == []


def test_erasing_employee_5_leaves_customer_5(desk: Deployment) -> None:
    reference = submit(desk, "erasure", "--subject-id", "5", "--subject-type", "employees")[
        "reference"
    ]
    ok(desk.run("review-dsar", reference, "--approve", "--reviewer", OFFICER, "--execute"))
    ok(desk.run("process-dsar-requests", "--execute"))
    applied = summary(desk, "apply-deletions", "--execute")
    assert applied["applied"] == 1
    ok(desk.run("process-dsar-requests", "--execute"))
    assert keys(desk, employees, "employee_id") == [6, 7]
    assert keys(desk, payslips, "employee_id") == [6, 7]
    assert keys(desk, customers, "customer_id") == ["5", "ALFKI", "ANTON"]
    with desk.session() as s:
        status = s.scalar(select(DsarRequest.status).where(DsarRequest.reference == reference))
    assert status == "completed"


def test_each_kind_s_access_export_holds_that_kind_s_data_only(desk: Deployment) -> None:
    out = submit(desk, "access", "--email", ALICE)
    for made in out["requests"]:
        ok(desk.run("review-dsar", made["reference"], "--approve", "--reviewer", OFFICER,
                    "--execute"))  # fmt: skip
    ok(desk.run("process-dsar-requests", "--execute"))
    store = export_store(desk.policy())
    tables = {}
    with desk.session() as s:
        for subject_type, path in s.execute(
            select(DsarRequest.subject_type, DsarRequest.export_path).order_by(DsarRequest.id)
        ):
            with zipfile.ZipFile(io.BytesIO(store.read(path))) as archive:
                document = json.loads(archive.read("data.json"))
                folders = {name.split("/")[0] for name in archive.namelist() if "/" in name}
            assert folders == {subject_type}  # one folder, named for the kind
            tables[subject_type] = {t: len(rows) for t, rows in document["tables"].items()}
        assert s.scalar(select(func.count()).select_from(DsarRequest)) == 2
    assert tables == {
        "customers": {"customers": 1, "orders": 0},
        "employees": {"employees": 1, "payslips": 1},
    }


def test_statistics_split_requests_by_kind_of_subject(desk: Deployment) -> None:
    submit(desk, "access", "--email", ALICE)
    submit(desk, "erasure", "--subject-id", "6", "--subject-type", "employees")
    with desk.session() as s:
        split = dsar_split(s, "subject_type")
    per_kind = split.set_index("subject_type")[["received", "open"]].to_dict("index")
    assert per_kind == {
        "customers": {"received": 1, "open": 1},
        "employees": {"received": 2, "open": 2},
    }


def test_a_correction_lands_only_on_data_of_the_request_s_kind(desk: Deployment) -> None:
    """Employee 5's rectification may not name customers.company: customer '5' would get it."""
    asked = (
        "submit-dsar", "--kind", "rectification", "--subject-id", "5", "--subject-type",
        "employees", "--requested-by", SUPPORT, *IDENTITY, "--execute",
    )  # fmt: skip
    refused = desk.run(*asked, "--correct", "customers.company=Evil Corp")
    assert refused.exit_code == 2
    assert (
        "'customers.company' holds data of the 'customers' subjects; this request is about "
        "one of the 'employees' subjects" in refused.output
    )
    assert requests(desk) == []
    ok(desk.run(*asked, "--correct", "employees.first_name=Alicia"))
    assert requests(desk) == [("employees", "5", "rectification")]


def test_only_the_erased_kind_s_key_is_hashed_and_replay_finds_it_in_its_kind(
    desk: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Customer '5' and employee 5 share a key, not a hash's fate: erasing the employee keeps
    the customer's key, request and profile as they were, and a restore of the employees
    table is erased again from the employees' keys."""
    monkeypatch.setenv("COMPLIANCE_HASH_KEY", "two-kinds-hash-key-0123456789abcdef-01234")
    customer = submit(desk, "access", "--subject-id", "5", "--subject-type", "customers")
    with desk.app_engine.connect() as conn:
        saved = [dict(r._mapping) for r in conn.execute(select(employees))]
    reference = submit(desk, "erasure", "--subject-id", "5", "--subject-type", "employees")[
        "reference"
    ]
    ok(desk.run("review-dsar", reference, "--approve", "--reviewer", OFFICER, "--execute"))
    ok(desk.run("process-dsar-requests", "--execute"))
    ok(desk.run("apply-deletions", "--execute"))
    done = summary(desk, "process-dsar-requests", "--execute")
    assert done["keys_hashed"] == 1, done
    digest = hashed_key("5", b"two-kinds-hash-key-0123456789abcdef-01234")
    assert requests(desk) == [("customers", "5", "access"), ("employees", digest, "erasure")]
    with desk.session() as s:
        kept = s.execute(select(DsarRequest.reference).where(DsarRequest.subject_id == "5"))
        assert [r for (r,) in kept] == [customer["reference"]]
        profiles = set(
            s.execute(select(ComplianceProfile.subject_type, ComplianceProfile.subject_id))
        )
    assert ("employees", "5") not in profiles

    with desk.app_engine.begin() as conn:  # a restore brings employee 5 back
        conn.execute(delete(payslips))
        conn.execute(delete(employees))
        conn.execute(insert(employees), saved)
    today = datetime.now(UTC).date().isoformat()
    replayed = summary(desk, "replay-erasures", "--since", today, "--execute")
    assert replayed["erasures"] == 1
    assert keys(desk, employees, "employee_id") == [6, 7]
    assert keys(desk, customers, "customer_id") == ["5", "ALFKI", "ANTON"]


def test_a_webhook_is_told_which_kind_of_subject_to_erase(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A helpdesk holding customers and staff alike must know which 5 to erase."""
    monkeypatch.setenv("HELPDESK_SECRET", "helpdesk-secret")
    with webhook_service(b"helpdesk-secret") as service:
        policy = TWO_KINDS_POLICY + (
            '\n[dashboard]\ndemo_mode = true\n\n[systems.helpdesk]\nkind = "webhook"\n'
            f'url = "{service.url}"\nsecret_env = "HELPDESK_SECRET"\ntimeout_seconds = 2\n'
        )
        d = make_deployment(backend, tmp_path / "helpdesk", policy)
        fill_two_kinds(d.app_engine)
        try:
            reference = submit(d, "erasure", "--subject-id", "5", "--subject-type", "employees")[
                "reference"
            ]
            ok(d.run("review-dsar", reference, "--approve", "--reviewer", OFFICER, "--execute"))
            ok(d.run("process-dsar-requests", "--execute"))
            d.run("apply-deletions", "--execute")  # waits for the helpdesk: not an error here
        finally:
            d.dispose()
    told = [c.body["subject"] for c in service.calls if c.body and "subject" in c.body]
    assert told and all(s == {"id": "5", "email": ALICE, "type": "employees"} for s in told)


def test_erasing_employee_5_keeps_what_was_typed_for_customer_5(desk: Deployment) -> None:
    """Texts are tied to a subject by kind and key: customer '5''s open rectification keeps
    its new value when employee 5's erasure completes."""
    asked = submit(
        desk, "rectification", "--subject-id", "5", "--subject-type", "customers",
        "--correct", "customers.company=Bob's Bikes",
    )  # fmt: skip
    erasure = submit(desk, "erasure", "--subject-id", "5", "--subject-type", "employees")
    ok(desk.run("review-dsar", erasure["reference"], "--approve", "--reviewer", OFFICER,
                "--execute"))  # fmt: skip
    ok(desk.run("process-dsar-requests", "--execute"))
    ok(desk.run("apply-deletions", "--execute"))
    ok(desk.run("process-dsar-requests", "--execute"))
    with desk.session() as s:
        request = s.scalars(
            select(DsarRequest).where(DsarRequest.reference == asked["reference"])
        ).one()
        datamap = desk.datamap()
        try:
            plan = plan_rectification(s, datamap, request)
        finally:
            datamap.dispose()
        completed = s.scalar(
            select(DsarRequest.status).where(DsarRequest.reference == erasure["reference"])
        )
    assert completed == "completed"
    assert [(c.table, dict(c.values)) for c in plan.changes] == [
        ("customers", {"company": "Bob's Bikes"})
    ]
