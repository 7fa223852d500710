"""Alembic environment: the engine comes from the caller, or the URL the app itself uses."""

from alembic import context

from compliance.store.models import Base

config = context.config
engine = config.attributes.get("engine")
if engine is None:
    from compliance.policy.loader import load_policy
    from compliance.store.engines import make_engine

    engine = make_engine(load_policy().database_url)

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
