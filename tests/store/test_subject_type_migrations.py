"""Migrations 0020 and 0021 (kinds of data subject) go down as they came up, or say why not.

Below 0020 a key is one subject. Once customer '5' and employee 5 both have a profile, going
back would merge two people: refused in words, never by a constraint's error.
"""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import insert

from compliance.store.engines import alembic_config, current_revision, make_engine, migrate
from compliance.store.models import ComplianceProfile, utcnow
from tests.conftest import Backend

BEFORE_KINDS = "0019_request_changes"


def test_down_and_up_again_on_a_desk_of_one_kind(backend: Backend) -> None:
    engine = make_engine(backend.url("compliance"))
    try:
        head = migrate(engine)
        with engine.begin() as conn:
            now = utcnow()
            conn.execute(
                insert(ComplianceProfile),
                [{"subject_id": "5", "created_at": now, "updated_at": now}],
            )
        command.downgrade(alembic_config(engine), BEFORE_KINDS)
        assert current_revision(engine) == BEFORE_KINDS
        assert migrate(engine) == head
    finally:
        engine.dispose()


def test_going_below_kinds_is_refused_while_two_kinds_share_a_key(backend: Backend) -> None:
    engine = make_engine(backend.url("compliance"))
    try:
        head = migrate(engine)
        now = utcnow()
        with engine.begin() as conn:
            conn.execute(
                insert(ComplianceProfile),
                [
                    {"subject_id": "5", "subject_type": kind, "created_at": now, "updated_at": now}
                    for kind in ("customers", "employees")
                ],
            )
        with pytest.raises(RuntimeError) as refused:
            command.downgrade(alembic_config(engine), BEFORE_KINDS)
        assert str(refused.value) == (
            "cannot downgrade below 0020_subject_types: 1 key(s) name subjects of more than one "
            "kind; erase or merge them first"
        )
        assert current_revision(engine) in (head, "0020_subject_types")
    finally:
        engine.dispose()
