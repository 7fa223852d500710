"""A reflection is reused only while the schema is exactly the one reflected (store.schema):
jobs run one after another in a process see every change to a table, column or constraint."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, text

from compliance.policy.database_check import check_against_database, reflect_policy_tables
from compliance.store.engines import make_engine
from compliance.store.schema import schema_signature
from tests.conftest import Deployment

#: Asked about by name: workflows (whose foreign key reaches users) and a table not there yet.
TABLES = {"workflows", "scratch"}


def reflect(d: Deployment) -> tuple[Any, list[str]]:
    """The policy's tables as a job reflects them, and the statements that took."""
    sent: list[str] = []

    def keep(*args: Any) -> None:
        sent.append(args[2])

    event.listen(d.app_engine, "before_cursor_execute", keep)
    try:
        reflection = reflect_policy_tables(d.policy(), d.app_engine)
    finally:
        event.remove(d.app_engine, "before_cursor_execute", keep)
    return reflection, sent


def test_an_unchanged_schema_is_read_once_and_each_caller_gets_its_own_copy(
    demo: Deployment,
) -> None:
    first, read = reflect(demo)
    again, asked = reflect(demo)
    assert len(asked) == 1 < len(read)  # only the question "is it still the same schema?"
    users = again.metadatas["app_database"].tables["users"]
    assert [c.name for c in users.columns] == [
        c.name for c in first.metadatas["app_database"].tables["users"].columns
    ]
    assert users is not first.metadatas["app_database"].tables["users"]
    # What one caller adds to its copy, the next never sees.
    again.metadatas["app_database"].remove(users)
    third, _ = reflect(demo)
    assert "users" in third.metadatas["app_database"].tables


def test_every_change_to_the_schema_is_seen_by_the_next_reflection(demo: Deployment) -> None:
    reflect(demo)
    postgres = demo.backend == "postgresql"
    changes = [
        "ALTER TABLE users ADD COLUMN nickname VARCHAR(40)",
        "CREATE INDEX users_nickname ON users (nickname)",
        "CREATE TABLE scratch (id INTEGER PRIMARY KEY, note TEXT)",
        "ALTER TABLE scratch ADD COLUMN seen INTEGER",
        "DROP TABLE scratch",
        # Two foreign keys away from workflows: reflecting workflows reads teams as well.
        "ALTER TABLE users ADD COLUMN team_id INTEGER REFERENCES teams(id)",
        "ALTER TABLE teams ADD COLUMN motto TEXT",
    ]
    if postgres:
        changes += [
            "ALTER TABLE users ALTER COLUMN nickname TYPE VARCHAR(80)",
            "ALTER TABLE users ALTER COLUMN nickname SET DEFAULT 'x'",
            "UPDATE users SET nickname = 'x'",  # no change to the schema: skipped below
            "ALTER TABLE users ALTER COLUMN nickname SET NOT NULL",
            "ALTER TABLE users ADD CONSTRAINT nickname_short CHECK (length(nickname) < 50)",
            "ALTER TABLE users DROP COLUMN nickname",
        ]
    with demo.app_engine.begin() as conn:  # not reached from workflows until users refers to it
        conn.execute(text("CREATE TABLE teams (id INTEGER PRIMARY KEY, label TEXT)"))
    before = schema_signature(demo.app_engine, TABLES)
    for change in changes:
        with demo.app_engine.begin() as conn:
            conn.execute(text(change))
        after = schema_signature(demo.app_engine, TABLES)
        if change.startswith("UPDATE"):  # rows, not the schema: the reflection still holds
            assert after == before
            continue
        assert after != before, f"not seen: {change}"
        before = after
    reflection, read = reflect(demo)
    assert len(read) > 1
    users = reflection.metadatas["app_database"].tables["users"]
    assert ("nickname" in users.c) is not postgres


def test_a_job_after_a_mapped_column_is_dropped_refuses_to_run(demo: Deployment) -> None:
    ok = demo.run("apply-deletions")
    assert ok.exit_code == 0, ok.output
    with demo.app_engine.begin() as conn:
        conn.execute(text("ALTER TABLE users DROP COLUMN phone"))
    refused = demo.run("apply-deletions")
    assert refused.exit_code == 2, refused.output
    assert "table 'users' has no column 'phone'" in refused.stderr
    # And the library's own check, from a fresh reflection of the same process.
    reflection, _ = reflect(demo)
    assert "phone" not in reflection.metadatas["app_database"].tables["users"].c
    try:
        check_against_database(demo.policy(), demo.app_engine, reflection=reflection)
    except Exception as exc:
        assert "has no column 'phone'" in str(exc)
    else:
        raise AssertionError("the dropped column went unnoticed")


def test_tables_found_further_down_the_search_path_are_watched_too(demo: Deployment) -> None:
    """A database whose search path starts with an empty schema (a per-user schema, say) finds
    the policy's tables in the next one: a change there must still be seen."""
    if demo.backend != "postgresql":
        pytest.skip("SQLite has no search path")
    app_schema = demo.app_url.rsplit("search_path%3D", 1)[1]
    first = f"{app_schema}_first"
    with demo.app_engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{first}"'))
    engine = make_engine(demo.app_url.replace(f"%3D{app_schema}", f"%3D{first},{app_schema}"))
    try:
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT current_schema()")) == first
        before = schema_signature(engine, TABLES)
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE users ADD COLUMN nickname VARCHAR(40)"))
        assert schema_signature(engine, TABLES) != before
    finally:
        engine.dispose()
        with demo.app_engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{first}" CASCADE'))
