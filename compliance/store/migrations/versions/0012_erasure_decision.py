"""One decision per erasure request: the plan its approval accepted, kept like a batch's.

Revision ID: 0012_erasure_decision
Revises: 0011_ready
Create Date: 2026-11-27 10:00:00

Approving an erasure request is its review (issue 23): no dsar_erasure batch is made or
reviewed. With ``[dsar] erasure_review`` the officer saw the request's impact preview, and
the erasure plan that preview came from is stored under its hash on the request; the job
that opens the request's deletion record accepts it under that plan, so apply-deletions
refuses it if the policy has since widened, as it does for a batch's accepted plan.

Plain ADD COLUMN on both databases: SQLite's batch mode would rebuild deletion_records and
drop its tally triggers (0009).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_erasure_decision"
down_revision: str | None = "0011_ready"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("dsar_requests", "deletion_records")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("accepted_plan_hash", sa.String(length=64), nullable=True))


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_column(table, "accepted_plan_hash")
