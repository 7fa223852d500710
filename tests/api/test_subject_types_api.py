"""The intake API of a desk serving two kinds of data subject: a request names its kind.

Over real HTTP (uvicorn on loopback). A host application knows whether a customer or an
employee is asking; without ``subject_type`` the request is refused, naming the kinds.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from compliance.store.models import DsarRequest
from tests.api.test_intake_api import IDENTITY, Server, new_key, served
from tests.conftest import Backend, Deployment
from tests.two_kinds import two_kinds_desk


@pytest.fixture
def desk(backend: Backend, tmp_path: Path) -> Iterator[Deployment]:
    yield from two_kinds_desk(backend, tmp_path / "desk")


@pytest.fixture
def api(desk: Deployment) -> Iterator[Server]:
    with served(desk) as server:
        yield server


def test_a_request_names_its_kind_of_data_subject(desk: Deployment, api: Server) -> None:
    key = new_key(desk)
    body = {"kind": "erasure", "subject_id": 5, "identity_check": IDENTITY}
    missing = api.post(key, body)
    assert missing.status_code == 422
    assert "subject type is missing: this desk serves several kinds of data subject" in (
        missing.text
    )
    unknown = api.post(key, {**body, "subject_type": "staff"})
    assert unknown.status_code == 422
    assert "must be one of customers, employees, got 'staff'" in unknown.text

    made = api.post(key, {**body, "subject_type": "employees"})
    assert made.status_code == 201, made.text
    again = api.post(key, {**body, "subject_type": "customers"})  # customer '5': someone else
    assert again.status_code == 201, again.text
    with desk.session() as s:
        rows = s.execute(
            select(DsarRequest.reference, DsarRequest.subject_type, DsarRequest.subject_id)
        ).all()
    assert sorted((kind, subject) for _, kind, subject in rows) == [
        ("customers", "5"),
        ("employees", "5"),
    ]
    assert {r for r, _, _ in rows} == {made.json()["reference"], again.json()["reference"]}
