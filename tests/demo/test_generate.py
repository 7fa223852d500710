"""The demo databases: what the generator made is what the database holds, on both databases."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Column, DateTime, Integer, MetaData, String, Table, Text, select

from compliance.demo.generate import insert_rows
from compliance.store.engines import make_engine
from tests.conftest import Backend

AWKWARD = [
    {"id": 1, "name": 'say "hi", then\nleave', "note": "", "flag": True,
     "at": datetime(2026, 1, 2, 3, 4, 5, 678901)},
    {"id": 2, "name": "O'Brien; DROP TABLE x; -- \\N", "note": None, "flag": False,
     "at": datetime(2020, 2, 29, 0, 0)},
    {"id": 3, "name": "Zoë 名前 😀,\t", "note": "NULL", "flag": None, "at": None},
]  # fmt: skip


def test_generated_rows_arrive_exactly_as_made_quotes_commas_newlines_empty_and_null(
    backend: Backend,
) -> None:
    meta = MetaData()
    table = Table(
        "awkward", meta,
        Column("id", Integer, primary_key=True), Column("name", String(100)),
        Column("note", Text), Column("flag", Boolean), Column("at", DateTime),
    )  # fmt: skip
    engine = make_engine(backend.url("app"))
    try:
        meta.create_all(engine)
        with engine.begin() as conn:
            insert_rows(conn, table, AWKWARD)
        with engine.connect() as conn:
            stored = [dict(r._mapping) for r in conn.execute(select(table).order_by(table.c.id))]
    finally:
        engine.dispose()
    assert stored == AWKWARD
