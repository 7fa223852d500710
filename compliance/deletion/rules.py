"""Bucket rules: which subjects are due for deletion.

Each rule yields subject keys as text; a bucket's due subjects are the intersection of
its rules, computed by the application database itself (``INTERSECT``), so a million
subjects never have to sit in Python memory at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from sqlalchemy import Connection, String, cast, column, func, intersect, select, text
from sqlalchemy.exc import DBAPIError

from compliance.errors import ConfigError, first_line
from compliance.policy.datamap import DataMap
from compliance.policy.model import AgeRule, Bucket, SqlRule


def _cutoff(datamap: DataMap, rule: AgeRule, now: datetime) -> datetime:
    cutoff = now - timedelta(days=rule.older_than_days)
    ts_type = datamap.table(rule.table).c[rule.timestamp].type
    if getattr(ts_type, "timezone", False):
        return cutoff.astimezone(UTC)
    # Application timestamps without a zone are taken to be UTC.
    return cutoff.astimezone(UTC).replace(tzinfo=None)


def rule_select(datamap: DataMap, rule: AgeRule | SqlRule, now: datetime, index: int) -> Any:
    if isinstance(rule, SqlRule):
        return select(cast(sql_rule_key(datamap, rule, index), String).label("subject_key"))
    base, key = datamap.keyed_select(rule.table)
    ts = datamap.table(rule.table).c[rule.timestamp]
    # A NULL timestamp never counts as old: one such row keeps the subject off the list.
    return (
        base.add_columns(key.label("subject_key"))
        .group_by(key)
        .having(func.max(ts) < _cutoff(datamap, rule, now))
        .having(func.count() == func.count(ts))
    )


def sql_rule_key(datamap: DataMap, rule: SqlRule, index: int) -> Any:
    """The subject keys an SQL rule selects (its first column), in the column's own type."""
    first = _first_column(datamap, rule.sql)
    return text(rule.sql).columns(column(first)).subquery(f"rule_{index}").c[first]


def _first_column(datamap: DataMap, sql: str) -> str:
    with datamap.engine.connect() as conn:
        _read_only(conn)
        try:
            return next(
                iter(conn.execute(text(f"SELECT * FROM ({sql}) AS probe WHERE 1 = 0")).keys())
            )
        finally:
            _end_read_only(conn)


def _end_read_only(conn: Connection) -> None:
    conn.rollback()
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA query_only = OFF")


def due_query(datamap: DataMap, bucket: Bucket, now: datetime) -> Any:
    selects = [rule_select(datamap, r, now, i) for i, r in enumerate(bucket.rules)]
    if len(selects) == 1:
        return selects[0]
    return intersect(*selects)


def _read_only(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SET TRANSACTION READ ONLY"))
    elif conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA query_only = ON")


def iter_due_subjects(
    datamap: DataMap, bucket: Bucket, now: datetime, *, chunk: int = 5000
) -> Iterator[list[str]]:
    """Yield the bucket's due subject keys in chunks, read-only.

    Unordered on purpose: sorting a million keys costs more than the rest of the query,
    and nothing downstream depends on the order.
    """
    try:
        query = due_query(datamap, bucket, now)
    except DBAPIError as exc:
        raise _rule_error(bucket, exc) from None
    with datamap.engine.connect() as conn:
        _read_only(conn)
        try:
            sub = query.subquery("due")
            result = conn.execution_options(stream_results=True, yield_per=chunk).execute(
                select(sub.c.subject_key)
            )
            for part in result.partitions(chunk):
                yield [row[0] for row in part]
        except DBAPIError as exc:
            raise _rule_error(bucket, exc) from None
        finally:
            _end_read_only(conn)


def copy_due_subjects(datamap: DataMap, bucket: Bucket, now: datetime, out: IO[bytes]) -> int:
    """Write the bucket's due subject keys to ``out`` in COPY's text format; return how many.

    For a PostgreSQL application database: the keys leave the server as one COPY stream,
    with no Python work per key, ready to COPY into another PostgreSQL database. A NULL key
    names no subject and is left out. Read-only, like iter_due_subjects.
    """
    try:
        query = due_query(datamap, bucket, now).subquery("due")
    except DBAPIError as exc:
        raise _rule_error(bucket, exc) from None
    keys = select(query.c.subject_key).where(query.c.subject_key.is_not(None))
    with datamap.engine.connect() as conn:
        _read_only(conn)
        compiled = keys.compile(conn, compile_kwargs={"render_postcompile": True})
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            sql = cursor.mogrify(str(compiled), compiled.params).decode()
            cursor.copy_expert(f"COPY ({sql}) TO STDOUT", out)
            return int(cursor.rowcount)
        except conn.dialect.loaded_dbapi.Error as exc:  # the driver's own, not wrapped
            raise _refused(bucket, exc) from None
        finally:
            cursor.close()
            _end_read_only(conn)


def _rule_error(bucket: Bucket, exc: DBAPIError) -> ConfigError:
    return _refused(bucket, exc.orig if exc.orig else exc)


def _refused(bucket: Bucket, error: BaseException) -> ConfigError:
    reason = first_line(error)
    return ConfigError(
        f"buckets.{bucket.name}.rules: the application database refused a rule: {reason}"
    )
