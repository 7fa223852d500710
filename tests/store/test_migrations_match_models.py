"""The migrations build exactly the tables the models describe, on both databases.

A model edited without a migration (or a migration without its model) would pass every
test that creates tables from one of the two, and fail in production on the other.
The fixtures copy one migration's result instead of migrating for every test
(tests/conftest.py, MigratedTemplate); the copy must be what Alembic builds.
"""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, text

from compliance.store.engines import make_engine, migrate
from compliance.store.models import Base
from tests.conftest import MIGRATED, Backend, Deployment

# Everything a migration leaves in a PostgreSQL schema, with the schema's own name left out.
POSTGRES_CATALOG = """
SELECT 'column', table_name || '.' || column_name || ' ' || data_type || ' '
    || coalesce(column_default, '') || ' ' || is_nullable
FROM information_schema.columns WHERE table_schema = current_schema()
UNION ALL SELECT 'index', indexdef FROM pg_indexes WHERE schemaname = current_schema()
UNION ALL SELECT 'constraint', conrelid::regclass || ' ' || conname || ' '
    || pg_get_constraintdef(oid)
FROM pg_constraint WHERE connamespace = current_schema()::regnamespace
UNION ALL SELECT 'trigger', pg_get_triggerdef(t.oid) FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid
WHERE NOT t.tgisinternal AND c.relnamespace = current_schema()::regnamespace
UNION ALL SELECT 'function', pg_get_functiondef(oid) FROM pg_proc
WHERE pronamespace = current_schema()::regnamespace
UNION ALL SELECT 'sequence', sequencename || ' ' || coalesce(last_value, 0) FROM pg_sequences
WHERE schemaname = current_schema()
UNION ALL SELECT 'revision', version_num FROM alembic_version
ORDER BY 1, 2
"""
SQLITE_CATALOG = """
SELECT type, name || ' ' || tbl_name || ' ' || coalesce(sql, '') FROM sqlite_master
UNION ALL SELECT 'revision', version_num FROM alembic_version
ORDER BY 1, 2
"""


def differences_from_models(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": False}
        )
        return list(compare_metadata(context, Base.metadata))


def catalog(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            return [(kind, what) for kind, what in conn.execute(text(SQLITE_CATALOG))]
        schema = str(conn.scalar(text("SELECT current_schema()")))
        rows = conn.execute(text(POSTGRES_CATALOG))
        return [
            (kind, what.replace(f'"{schema}".', "").replace(f"{schema}.", ""))
            for kind, what in rows
        ]


def test_a_migrated_database_has_every_table_column_index_and_key_the_models_declare(
    backend: Backend,
) -> None:
    engine = make_engine(backend.url("compliance"))
    migrate(engine)  # Alembic itself, not the fixtures' copy of its result
    try:
        assert differences_from_models(engine) == []
    finally:
        engine.dispose()


def test_the_fixtures_copy_of_a_migrated_database_is_what_alembic_builds(
    deployment: Deployment, backend: Backend
) -> None:
    """A deployment's compliance database, and two more made the fixtures' way (the second a
    copy for sure, whichever test of this process migrated first), hold what Alembic builds."""
    migrated = make_engine(backend.url("migrated"))
    made = [make_engine(backend.url(role)) for role in ("first", "second")]
    try:
        migrate(migrated)
        for engine in made:
            MIGRATED.migrate(engine)
        expected = catalog(migrated)
        assert expected != []
        for engine in (deployment.engine, *made):
            assert catalog(engine) == expected
        assert differences_from_models(made[-1]) == []
    finally:
        for engine in (migrated, *made):
            engine.dispose()
