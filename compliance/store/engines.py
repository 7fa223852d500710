"""Engines and sessions for the two databases, and migrations of the compliance one."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from compliance.errors import ConfigError, first_line
from compliance.store.hashing import sqlite_anon_hash

MIGRATIONS = Path(__file__).parent / "migrations"


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # Foreign keys hold on SQLite as on PostgreSQL; WAL lets the dashboard read while a job writes.
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
    # The hash anonymize strategy in SQL, so one UPDATE can anonymize a chunk on SQLite too.
    dbapi_connection.create_function("pd_anon_hash", 1, sqlite_anon_hash, deterministic=True)
    dbapi_connection.create_function("pd_anon_hash", 2, sqlite_anon_hash, deterministic=True)


def normalise_url(url: URL) -> URL:
    """``postgres://`` and ``postgresql://`` mean PostgreSQL through the installed psycopg2.

    SQLAlchemy 2.1 picks psycopg (3) for a bare ``postgresql://`` and knows no ``postgres``
    dialect, yet these are the forms hosting providers hand out.
    """
    backend, _, driver = url.drivername.partition("+")
    if backend in ("postgres", "postgresql"):
        return url.set(drivername=f"postgresql+{driver or 'psycopg2'}")
    return url


def make_engine(url: str, *, what: str = "database") -> Engine:
    try:
        parsed = normalise_url(make_url(url))
    except ArgumentError:
        raise ConfigError(f"{what} url '{url}' is not a database URL") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() == "psycopg2":
        # UPDATE/DELETE executemany in pages, not one round trip per row.
        options["executemany_mode"] = "values_plus_batch"
    try:
        engine = create_engine(parsed, pool_pre_ping=True, **options)
    except NoSuchModuleError:
        raise ConfigError(
            f"{what} url '{parsed.render_as_string()}' names an unknown driver"
        ) from None
    except ImportError as exc:  # mysql:// without MySQLdb, and the like
        raise ConfigError(
            f"{what} url '{parsed.render_as_string()}' needs the Python driver "
            f"'{exc.name or 'unknown'}', which is not installed"
        ) from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _on_sqlite_connect)
    return engine


#: Engines kept per process, most recently used last; the oldest is disposed past the bound.
SHARED_ENGINES = 16
_shared: OrderedDict[str, Engine] = OrderedDict()
_shared_lock = threading.Lock()


def shared_engine(url: str, *, what: str = "database") -> Engine:
    """This process's engine for ``url``, made on first use (SQLAlchemy: one engine per
    database and process).

    A job run in-process after another (a scheduler, the test suite's click runner) then
    keeps the engine's compiled statements and dialect set-up instead of paying them again;
    a job run as its own process sees no difference. Callers release connections with
    ``engine.dispose()``, which empties the pool and keeps the engine usable.
    """
    with _shared_lock:
        engine = _shared.get(url)
        if engine is None:
            engine = make_engine(url, what=what)
            _shared[url] = engine
            if len(_shared) > SHARED_ENGINES:
                _, oldest = _shared.popitem(last=False)
                oldest.dispose()
        _shared.move_to_end(url)
        return engine


def check_reachable(engine: Engine, what: str) -> None:
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                # SQLite opens any file lazily; read its header now, so a file that is not a
                # database is named here instead of failing in the middle of a job.
                conn.exec_driver_sql("SELECT count(*) FROM sqlite_master")
    except DatabaseError as exc:
        reason = first_line(exc)
        raise ConfigError(
            f"{what} at {engine.url.render_as_string()} is unreachable: {reason}"
        ) from None


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    with session_factory(engine)() as session:
        yield session


def alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def migrate(engine: Engine) -> str:
    """Create or upgrade the compliance database to the newest migration; return its revision."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    command.upgrade(alembic_config(engine), "head")
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision() or ""


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def analyze(session: Session, *models: Any) -> None:
    """Refresh PostgreSQL's statistics before a job scans tables that just grew by millions.

    Without it the planner may take a freshly filled table for empty and pick plans that
    are quadratic in its real size. SQLite plans these queries well without statistics.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    for model in models:
        session.execute(text(f"ANALYZE {model.__tablename__}"))
    session.commit()
