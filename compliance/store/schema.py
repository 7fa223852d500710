"""What a database's schema looks like right now, as one digest, and reflections reused while
it stays the same.

Reflecting the policy's tables is most of a job's start-up on PostgreSQL (a dozen catalog
queries). A process that runs jobs one after another (a scheduler, the test suite's click
runner) reflects once and then asks only "is the schema still the one I reflected?": one
query whose answer changes with any table, column, type, default, constraint or index
(on SQLite its own record of every schema object). A database whose schema cannot be
summed up this way is reflected every time, as before; a process that runs one job sees no
difference at all.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Engine, MetaData, inspect, text

#: Everything SQLAlchemy's reflection reads for the named tables the search path finds and
#: every table their foreign keys reach, as reflecting them follows those keys too. Found by
#: name through pg_class's (relname, relnamespace) index: a catalog that many test or
#: migration runs churned is never scanned.
_POSTGRES_SIGNATURE = text("""
WITH RECURSIVE rel AS (
    SELECT c.oid, c.relname, c.relkind FROM pg_class c
    WHERE c.relname = ANY (:names) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
      AND pg_table_is_visible(c.oid)
),
refs(oid) AS (
    SELECT oid FROM rel
    UNION SELECT co.confrelid FROM pg_constraint co JOIN refs ON co.conrelid = refs.oid
    WHERE co.contype = 'f'
)
SELECT md5(concat_ws('|',
    (SELECT string_agg(concat_ws(',', oid, relname, relkind), ';' ORDER BY oid) FROM rel),
    (SELECT string_agg(concat_ws(',', a.attrelid, a.attnum, a.attname, a.atttypid,
                                 a.atttypmod, a.attnotnull, a.attisdropped, a.atthasdef,
                                 a.attidentity, a.attgenerated, a.attcollation),
                       ';' ORDER BY a.attrelid, a.attnum)
       FROM pg_attribute a WHERE a.attrelid IN (SELECT oid FROM refs) AND a.attnum > 0),
    (SELECT string_agg(concat_ws(',', co.oid, co.conname, co.conrelid,
                                 pg_get_constraintdef(co.oid)), ';' ORDER BY co.oid)
       FROM pg_constraint co WHERE co.conrelid IN (SELECT oid FROM refs)),
    (SELECT string_agg(concat_ws(',', d.oid, d.adrelid, d.adnum,
                                 pg_get_expr(d.adbin, d.adrelid)), ';' ORDER BY d.oid)
       FROM pg_attrdef d WHERE d.adrelid IN (SELECT oid FROM refs)),
    (SELECT string_agg(concat_ws(',', i.indexrelid, pg_get_indexdef(i.indexrelid)),
                       ';' ORDER BY i.indexrelid)
       FROM pg_index i WHERE i.indrelid IN (SELECT oid FROM refs)),
    (SELECT string_agg(concat_ws(',', e.enumtypid, e.enumsortorder, e.enumlabel),
                       ';' ORDER BY e.enumtypid, e.enumsortorder)
       FROM pg_enum e WHERE e.enumtypid IN (
           SELECT a.atttypid FROM pg_attribute a WHERE a.attrelid IN (SELECT oid FROM refs)))
))
""")


def schema_signature(engine: Engine, tables: Iterable[str]) -> str | None:
    """A digest that changes whenever what reflecting ``tables`` reads changes (whether each
    exists included); None for a database it cannot be computed for (nothing is reused)."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql(
                "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
            ).all()
            return hashlib.sha256(repr(rows).encode()).hexdigest()
        if engine.dialect.name == "postgresql":
            names = sorted(tables)
            return str(conn.execute(_POSTGRES_SIGNATURE, {"names": names}).scalar_one())
    return None


def copy_metadata(source: MetaData) -> MetaData:
    """A MetaData of its own holding the same tables: whoever receives it may add to it."""
    copy = MetaData()
    for table in source.tables.values():
        table.to_metadata(copy)
    return copy


@dataclass
class _Kept:
    signature: str
    metadata: MetaData
    existing: set[str]


#: Reflections kept per process, most recently used last.
KEPT_REFLECTIONS = 32
_kept: OrderedDict[tuple[str, frozenset[str]], _Kept] = OrderedDict()
_lock = threading.Lock()


@dataclass
class Reflected:
    """One database's reflected tables, a copy the caller owns; which of those asked for exist.

    Only the tables asked for (and those their foreign keys reach) are covered: what refers
    to them from elsewhere, such as the foreign keys of the whole database, is read afresh."""

    metadata: MetaData
    existing: set[str]


def reflect_tables(engine: Engine, wanted: set[str]) -> Reflected:
    """The tables in ``wanted`` that exist, reflected now or reused from an earlier
    reflection of the same database while its schema signature is unchanged."""
    key = (engine.url.render_as_string(hide_password=False), frozenset(wanted))
    signature = schema_signature(engine, wanted)
    with _lock:
        kept = _kept.get(key)
        if kept is not None and signature is not None and kept.signature == signature:
            _kept.move_to_end(key)
            return Reflected(copy_metadata(kept.metadata), set(kept.existing))
    existing = set(inspect(engine).get_table_names()) & wanted  # what the caller asks about
    metadata = MetaData()
    metadata.reflect(bind=engine, only=sorted(wanted & existing))
    if signature is not None:
        with _lock:
            _kept[key] = _Kept(signature, copy_metadata(metadata), set(existing))
            _kept.move_to_end(key)
            while len(_kept) > KEPT_REFLECTIONS:
                _kept.popitem(last=False)
    return Reflected(metadata, existing)
