"""Alembic environment: the engine comes from the caller, or the URL the app itself uses."""

from alembic import context

from compliance.store.models import Base

config = context.config
engine = config.attributes.get("engine")
if engine is None:
    from compliance.policy.loader import load_policy
    from compliance.store.engines import make_engine

    engine = make_engine(load_policy().database_url)

with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # Batch mode rebuilds a table by copy, drop and rename; with foreign keys on, the
        # drop would fire ON DELETE actions (a batch's records would lose their batch).
        # The pragma only takes effect outside a transaction, hence before begin().
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
    try:
        with connection.begin():
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                render_as_batch=sqlite,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()
