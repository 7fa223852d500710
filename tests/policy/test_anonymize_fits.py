"""What each anonymize strategy writes is checked against the column at load, not at apply.

A `hash` (45 characters) into a varchar(24), a NULL into a NOT NULL column or text into a date
column used to load without a word and then fail every record of an accepted batch. Each is
now one error at load naming the column and a fix. The check goes by the declared type on
SQLite too (SQLite would store the long value), so a policy that passes there holds on
PostgreSQL.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import (
    Column,
    Date,
    Engine,
    Enum,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    select,
)

from compliance.deletion.erase import erase
from compliance.errors import ConfigError
from compliance.policy.database_check import check_against_database
from compliance.policy.loader import parse_policy
from compliance.store.engines import make_engine
from tests.conftest import Backend, Deployment, make_deployment, table_digest

metadata = MetaData()
people = Table(
    "people",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(100), unique=True),
    Column("phone", String(24)),  # Northwind's customers.phone
    Column("first_name", String(10), nullable=False),  # Northwind's employees.first_name
    Column("initial", String(1), nullable=False),
    Column("nickname", String(8)),
    Column("handle", String(64), nullable=False),
    Column("born", Date),
    Column("score", Integer, nullable=False),
    Column("notes", Text),
    Column("status", Enum("open", "closed", name="person_status"), nullable=False),
)

POLICY = """
[database]
url = "sqlite:///var/compliance.db"
[app_database]
url = "sqlite:///var/demo_app.db"
[dashboard]
demo_mode = true

[subjects]
table = "people"
key = "id"
email = "email"

[tables.people]
subject_column = "id"
on_erasure = "anonymize"
anonymize = ANONYMIZE

[buckets.everyone]
tables = ["people"]
rules = [{ sql = "SELECT id FROM people" }]
"""

REDACT_DASH = '{ strategy = "redact", text = "-" }'

#: Every strategy against a column too short for it, a NOT NULL one, one that is not text;
#: None where it fits. The message after "tables.people.anonymize.COLUMN: " is whole.
CASES = [
    ('phone = "hash"',
     "'hash' writes 45 characters ('anon-' and hex digits) but people.phone holds at most 24 "
     "characters (VARCHAR(24)); widen the column to 45 characters, use 'null', or use 'redact'"),
    ('nickname = "hash"',
     "'hash' writes 45 characters ('anon-' and hex digits) but people.nickname holds at most 8 "
     "characters (VARCHAR(8)); widen the column to 45 characters, use 'null', or give redact a "
     'text that fits: nickname = { strategy = "redact", text = "-" }'),
    ('handle = "hash"', None),  # NOT NULL: a hash of a value is never NULL, NULL stays NULL
    ('email = "hash"', None),  # unique: hashes stay distinct
    ('born = "hash"',
     "'hash' writes 45 characters ('anon-' and hex digits) but people.born is DATE (not text); "
     "use 'null'"),
    ('status = "hash"', "'hash' writes 45 characters ('anon-' and hex digits) but people.status "),
    ('initial = "redact"',
     "'redact' writes '[REDACTED]' (10 characters) but people.initial holds at most 1 character "
     '(VARCHAR(1)); give redact a text that fits: initial = { strategy = "redact", text = "-" }'),
    (f"initial = {REDACT_DASH}", None),
    ('nickname = { strategy = "redact", text = "[removed]" }',
     "'redact' writes '[removed]' (9 characters) but people.nickname holds at most 8 characters "
     "(VARCHAR(8)); use 'null', or give redact a text that fits: "
     'nickname = { strategy = "redact", text = "-" }'),
    ('first_name = "redact"', None),  # 10 characters into varchar(10): fits, just
    ('email = "redact"',
     "'redact' writes '[REDACTED]' (10 characters) but people.email is unique, and it writes the "
     "same text into every row; use 'hash', or use 'null'"),
    ('score = "redact"',
     "'redact' writes '[REDACTED]' (10 characters) but people.score is INTEGER (not text); "
     "leave 'score' out of anonymize, or delete the rows instead"),
    ('status = { strategy = "redact", text = "closed" }', None),
    ('first_name = "null"',
     "'null' writes NULL but people.first_name is NOT NULL; allow NULL in the column, or use "
     "'redact'"),
    ('initial = "null"',
     "'null' writes NULL but people.initial is NOT NULL; allow NULL in the column, or give "
     'redact a text that fits: initial = { strategy = "redact", text = "-" }'),
    ('handle = "null"',
     "'null' writes NULL but people.handle is NOT NULL; allow NULL in the column, use 'hash', "
     "or use 'redact'"),
    ('born = "null"', None),
    ('notes = "hash"', None),
]  # fmt: skip


def policy_with(anonymize: str) -> str:
    return POLICY.replace("ANONYMIZE", "{ " + anonymize + " }")


@pytest.fixture
def app(backend: Backend) -> Iterator[Engine]:
    engine = make_engine(backend.url("app"))
    metadata.create_all(engine)
    yield engine
    engine.dispose()


def test_each_strategy_is_checked_against_the_column_it_writes_into(app: Engine) -> None:
    for anonymize, expected in CASES:
        policy = parse_policy(tomllib.loads(policy_with(anonymize)), env={})
        column = anonymize.split(" ")[0]
        if expected is None:
            assert check_against_database(policy, app) == [], anonymize
            continue
        with pytest.raises(ConfigError) as caught:
            check_against_database(policy, app)
        message = str(caught.value)
        assert message.startswith(f"tables.people.anonymize.{column}: {expected}"), message
        if not expected.endswith(" "):
            assert message == f"tables.people.anonymize.{column}: {expected}"
        assert "\n" not in message


def test_the_enum_column_is_named_by_what_it_holds(app: Engine) -> None:
    """PostgreSQL's enum holds only its values; SQLite's is a varchar as long as the longest."""
    policy = parse_policy(tomllib.loads(policy_with('status = "redact"')), env={})
    with pytest.raises(ConfigError) as caught:
        check_against_database(policy, app)
    if app.dialect.name == "postgresql":
        assert "people.status is an enum of 'open', 'closed'; " in str(caught.value)
    else:
        assert "people.status holds at most 6 characters (VARCHAR(6)); " in str(caught.value)


@pytest.mark.parametrize(
    ("anonymize", "message"),
    [
        ('first_name = { strategy = "redact", txt = "-" }',
         "tables.people.anonymize.first_name.txt: unknown key for strategy 'redact' "
         "(allowed: strategy, text)"),
        ('phone = { strategy = "hash", text = "-" }',
         "tables.people.anonymize.phone.text: unknown key for strategy 'hash' (allowed: strategy)"),
        ('first_name = { text = "-" }',
         "tables.people.anonymize.first_name.strategy: expected str, got None"),
        ('first_name = { strategy = "redact", text = 7 }',
         "tables.people.anonymize.first_name.text: expected str, got 7"),
        ('first_name = { strategy = "redact", text = "a\\nb" }',
         "tables.people.anonymize.first_name.text: 'a\\nb' must be one line of at most 255 "
         "characters"),
        ('first_name = { strategy = "scramble" }',
         "tables.people.anonymize.first_name: unknown strategy 'scramble' (known: hash, null, "
         "redact)"),
        ("first_name = 3", "tables.people.anonymize.first_name: expected str or dict, got 3"),
    ],
)  # fmt: skip
def test_a_bad_strategy_option_is_one_error_naming_it(anonymize: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_policy(tomllib.loads(policy_with(anonymize)), env={})
    assert str(caught.value) == message


@pytest.fixture
def deployment_of_people(backend: Backend, tmp_path: Path) -> Iterator[Deployment]:
    d = make_deployment(backend, tmp_path / "people", policy_with('phone = "hash"'))
    metadata.create_all(d.app_engine)
    with d.app_engine.begin() as conn:
        conn.execute(
            insert(people),
            [
                {"id": n, "email": f"p{n}@example.com", "phone": "+44 20 7946 0000",
                 "first_name": "Anne", "initial": "A", "handle": f"anne{n}", "score": n,
                 "status": "open"}
                for n in (1, 2)
            ],
        )  # fmt: skip
    yield d
    d.dispose()


def test_a_job_refuses_the_policy_at_load_and_changes_nothing(
    deployment_of_people: Deployment,
) -> None:
    d = deployment_of_people
    before = table_digest(d.app_engine, "people")
    result = d.run("create-deletion-records", "--bucket", "everyone", "--execute")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "Error: tables.people.anonymize.phone: 'hash' writes 45 characters ('anon-' and hex "
        "digits) but people.phone holds at most 24 characters (VARCHAR(24)); widen the column to "
        "45 characters, use 'null', or use 'redact'"
    )
    assert table_digest(d.app_engine, "people") == before
    with d.engine.connect() as conn:
        records = Table("deletion_records", MetaData(), autoload_with=conn)
        assert conn.scalar(select(func.count()).select_from(records)) == 0


def test_redact_writes_the_text_the_policy_gives(deployment_of_people: Deployment) -> None:
    d = deployment_of_people
    d.write_policy(
        policy_with(f'first_name = {REDACT_DASH}, initial = {REDACT_DASH}, email = "null"')
    )
    datamap = d.datamap()
    with d.app_engine.begin() as conn:
        erase(datamap, conn, datamap.erasure_plan(["people"]), ["1"])
    erased, kept = d.app_rows("people")
    assert (erased["first_name"], erased["initial"], erased["email"]) == ("-", "-", None)
    assert (kept["first_name"], kept["initial"], kept["email"]) == ("Anne", "A", "p2@example.com")
