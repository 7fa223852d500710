"""Requests carry a change number the database keeps, so a cached list knows it is stale.

Revision ID: 0019_request_changes
Revises: 0018_request_kinds
Create Date: 2026-12-07 15:30:00

Issue 26: the dashboard caches the DSAR list and its counters briefly. A cache must be
invalidated when anyone, in any process, writes what it shows; most writes to a request are
audited, but not all (a job claiming a request for processing, an operator's SQL). Every
insert or update of ``dsar_requests`` now gives the row a new ``last_change``, larger than
any before it, set by the database itself: the newest one (an index lookup) is the
requests' version (compliance.reports.versions.requests_version).

PostgreSQL numbers changes from a sequence (a BEFORE trigger on update, the column's default
on insert); SQLite, whose writers are serialised, takes one more than the newest. A later
migration that rebuilds ``dsar_requests`` in SQLite's batch mode must create the SQLite
triggers again (``SQLITE_TRIGGERS``).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019_request_changes"
down_revision: str | None = "0018_request_kinds"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_dsar_requests_last_change"
_NEXT_SQLITE = (
    "UPDATE dsar_requests SET last_change = "
    "(SELECT coalesce(max(last_change), 0) + 1 FROM dsar_requests) WHERE id = NEW.id;"
)
SQLITE_TRIGGERS = (
    f"CREATE TRIGGER dsar_requests_change_insert AFTER INSERT ON dsar_requests "
    f"BEGIN {_NEXT_SQLITE} END",
    # The WHEN keeps an explicit write of last_change (and this trigger's own) from looping.
    f"CREATE TRIGGER dsar_requests_change_update AFTER UPDATE ON dsar_requests "
    f"WHEN NEW.last_change IS OLD.last_change BEGIN {_NEXT_SQLITE} END",
)
POSTGRES = (
    "CREATE SEQUENCE dsar_requests_change_seq",
    "ALTER TABLE dsar_requests ADD COLUMN last_change BIGINT NOT NULL "
    "DEFAULT nextval('dsar_requests_change_seq')",
    "ALTER SEQUENCE dsar_requests_change_seq OWNED BY dsar_requests.last_change",
    "CREATE FUNCTION dsar_requests_changed() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN NEW.last_change := nextval('dsar_requests_change_seq'); RETURN NEW; END $$",
    "CREATE TRIGGER dsar_requests_change BEFORE UPDATE ON dsar_requests "
    "FOR EACH ROW EXECUTE FUNCTION dsar_requests_changed()",
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in POSTGRES:
            op.execute(statement)
    else:
        op.add_column(
            "dsar_requests",
            sa.Column("last_change", sa.Integer(), nullable=False, server_default="0"),
        )
        op.execute("UPDATE dsar_requests SET last_change = id")
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)
    op.create_index(INDEX, "dsar_requests", ["last_change"])


def downgrade() -> None:
    op.drop_index(INDEX, table_name="dsar_requests")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER dsar_requests_change ON dsar_requests")
        op.execute("DROP FUNCTION dsar_requests_changed()")
        op.execute("ALTER TABLE dsar_requests DROP COLUMN last_change")  # drops its sequence
    else:
        op.execute("DROP TRIGGER dsar_requests_change_update")
        op.execute("DROP TRIGGER dsar_requests_change_insert")
        with op.batch_alter_table("dsar_requests", schema=None) as batch_op:
            batch_op.drop_column("last_change")
