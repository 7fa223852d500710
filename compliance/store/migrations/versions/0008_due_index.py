"""Due records: a partial index for apply-deletions' claim and count.

Revision ID: 0008_due_index
Revises: 0005_evidence
Create Date: 2026-11-26 05:00:00

apply-deletions walks the accepted, open records of a bucket in id order. Without this
index the walk read every record after the last one claimed, erased or not, so the claim
that finds nothing more read the rest of the table (issue 13). The index holds only the
records still to erase, and applied records leave it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_due_index"
down_revision: str | None = "0005_evidence"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHERE = "accepted_for_deletion IS true AND deletion_applied_at IS NULL"


def upgrade() -> None:
    op.create_index(
        "ix_deletion_records_due",
        "deletion_records",
        ["bucket", "id"],
        postgresql_where=sa.text(WHERE),
        sqlite_where=sa.text(WHERE),
    )


def downgrade() -> None:
    op.drop_index("ix_deletion_records_due", table_name="deletion_records")
