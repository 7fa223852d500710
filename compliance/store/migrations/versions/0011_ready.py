"""Ready: an access export that is built but not yet delivered is not a completed request.

Revision ID: 0011_ready
Revises: 0010_plan_links
Create Date: 2026-11-27 09:00:00

A request was ``completed`` when its export was written, before anyone had sent the
subject a link (issue 23). ``ready`` is that state now, and ``completed`` waits for the
mail server to accept the link email. A ready request is still open: it counts against its
deadline and a second request of the same kind returns it, so the open-request index
covers it. ``exported_at`` keeps when the export was written: a ready export expires too.

Values are spelled here as they stand at this revision (see 0003_states).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_ready"
down_revision: str | None = "0010_plan_links"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUS = "ck_dsar_requests_status"
OPEN_INDEX = "uq_dsar_requests_open"
BEFORE = "status IN ('pending', 'approved', 'rejected', 'processing', 'completed', 'failed')"
AFTER = (
    "status IN ('pending', 'approved', 'rejected', 'processing', 'ready', 'completed', 'failed')"
)
OPEN_BEFORE = sa.text("status IN ('pending', 'approved', 'processing', 'failed')")
OPEN_AFTER = sa.text("status IN ('pending', 'approved', 'processing', 'ready', 'failed')")


def _open_index(where: sa.TextClause) -> None:
    op.create_index(
        OPEN_INDEX,
        "dsar_requests",
        ["subject_id", "kind"],
        unique=True,
        sqlite_where=where,
        postgresql_where=where,
    )


def upgrade() -> None:
    # Dropped before SQLite's batch mode rebuilds the table, so it is not copied as it was.
    op.drop_index(OPEN_INDEX, table_name="dsar_requests")
    with op.batch_alter_table("dsar_requests", schema=None) as batch_op:
        batch_op.drop_constraint(STATUS, type_="check")
        batch_op.create_check_constraint(STATUS, AFTER)
        batch_op.add_column(sa.Column("exported_at", sa.DateTime(), nullable=True))
    _open_index(OPEN_AFTER)
    # Exports written so far were completed in the same moment.
    op.execute(
        "UPDATE dsar_requests SET exported_at = completed_at "
        "WHERE kind = 'access' AND export_sha256 IS NOT NULL"
    )


def downgrade() -> None:
    # Before this revision a written export was a completed request.
    op.execute(
        "UPDATE dsar_requests SET status = 'completed', completed_at = exported_at "
        "WHERE status = 'ready'"
    )
    op.drop_index(OPEN_INDEX, table_name="dsar_requests")
    with op.batch_alter_table("dsar_requests", schema=None) as batch_op:
        batch_op.drop_column("exported_at")
        batch_op.drop_constraint(STATUS, type_="check")
        batch_op.create_check_constraint(STATUS, BEFORE)
    _open_index(OPEN_BEFORE)
