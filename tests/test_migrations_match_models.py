"""The migrations build exactly the tables the models describe, on both databases.

A model edited without a migration (or a migration without its model) would pass every
test that creates tables from one of the two, and fail in production on the other.
"""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from compliance.store.models import Base
from tests.conftest import Deployment


def test_a_migrated_database_has_every_table_column_index_and_key_the_models_declare(
    deployment: Deployment,
) -> None:
    with deployment.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": False}
        )
        differences = compare_metadata(context, Base.metadata)
    assert differences == []
