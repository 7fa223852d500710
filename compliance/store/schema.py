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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, MetaData, inspect, text

#: Everything SQLAlchemy's reflection reads for the tables of the search path's schemas.
_POSTGRES_SIGNATURE = text("""
WITH ns AS (SELECT oid FROM pg_namespace WHERE nspname = ANY (current_schemas(false))),
rel AS (
    SELECT c.oid, c.relname, c.relkind, c.relnamespace FROM pg_class c
    WHERE c.relnamespace IN (SELECT oid FROM ns) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
)
SELECT md5(concat_ws('|',
    (SELECT string_agg(concat_ws(',', oid, relname, relkind, relnamespace), ';' ORDER BY oid)
       FROM rel),
    (SELECT string_agg(concat_ws(',', a.attrelid, a.attnum, a.attname, a.atttypid,
                                 a.atttypmod, a.attnotnull, a.attisdropped, a.atthasdef,
                                 a.attidentity, a.attgenerated, a.attcollation),
                       ';' ORDER BY a.attrelid, a.attnum)
       FROM pg_attribute a WHERE a.attrelid IN (SELECT oid FROM rel) AND a.attnum > 0),
    (SELECT string_agg(concat_ws(',', co.oid, co.conname, co.conrelid,
                                 pg_get_constraintdef(co.oid)), ';' ORDER BY co.oid)
       FROM pg_constraint co WHERE co.conrelid IN (SELECT oid FROM rel)),
    (SELECT string_agg(concat_ws(',', d.oid, d.adrelid, d.adnum,
                                 pg_get_expr(d.adbin, d.adrelid)), ';' ORDER BY d.oid)
       FROM pg_attrdef d WHERE d.adrelid IN (SELECT oid FROM rel)),
    (SELECT string_agg(concat_ws(',', i.indexrelid, pg_get_indexdef(i.indexrelid)),
                       ';' ORDER BY i.indexrelid)
       FROM pg_index i WHERE i.indrelid IN (SELECT oid FROM rel)),
    (SELECT string_agg(concat_ws(',', e.enumtypid, e.enumsortorder, e.enumlabel),
                       ';' ORDER BY e.enumtypid, e.enumsortorder)
       FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid
      WHERE t.typnamespace IN (SELECT oid FROM ns))
))
""")


def schema_signature(engine: Engine) -> str | None:
    """A digest that changes whenever the schema reflection would read changes; None for a
    database it cannot be computed for (then nothing is reused)."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql(
                "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
            ).all()
            return hashlib.sha256(repr(rows).encode()).hexdigest()
        if engine.dialect.name == "postgresql":
            return str(conn.execute(_POSTGRES_SIGNATURE).scalar_one())
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
    extras: dict[str, Any] = field(default_factory=dict)


#: Reflections kept per process, most recently used last.
KEPT_REFLECTIONS = 32
_kept: OrderedDict[tuple[str, frozenset[str]], _Kept] = OrderedDict()
_lock = threading.Lock()


@dataclass
class Reflected:
    """One database's reflected tables: a copy the caller owns, and the signature it was read
    under (None: not reusable)."""

    metadata: MetaData
    existing: set[str]
    signature: str | None
    key: tuple[str, frozenset[str]]

    def extra(self, name: str, compute: Callable[[], Any]) -> Any:
        """Something else read off this schema (its foreign keys, say), kept beside it."""
        with _lock:
            kept = _kept.get(self.key)
            if kept is not None and kept.signature == self.signature and name in kept.extras:
                return kept.extras[name]
        value = compute()
        with _lock:
            kept = _kept.get(self.key)
            if kept is not None and kept.signature == self.signature:
                kept.extras[name] = value
        return value


def reflect_tables(engine: Engine, wanted: set[str]) -> Reflected:
    """The tables in ``wanted`` that exist, reflected now or reused from an earlier
    reflection of the same database while its schema signature is unchanged."""
    key = (engine.url.render_as_string(hide_password=False), frozenset(wanted))
    signature = schema_signature(engine)
    with _lock:
        kept = _kept.get(key)
        if kept is not None and signature is not None and kept.signature == signature:
            _kept.move_to_end(key)
            return Reflected(copy_metadata(kept.metadata), set(kept.existing), signature, key)
    existing = set(inspect(engine).get_table_names())
    metadata = MetaData()
    metadata.reflect(bind=engine, only=sorted(wanted & existing))
    if signature is not None:
        with _lock:
            _kept[key] = _Kept(signature, copy_metadata(metadata), set(existing))
            _kept.move_to_end(key)
            while len(_kept) > KEPT_REFLECTIONS:
                _kept.popitem(last=False)
    return Reflected(metadata, existing, signature, key)
