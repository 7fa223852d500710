"""DSAR processing: extension months, the linked deletion record, one open request per kind.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
OPEN = sa.text("status IN ('pending', 'approved', 'processing', 'failed')")


def upgrade() -> None:
    with op.batch_alter_table("dsar_requests", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("extension_months", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("deletion_record_id", BigId, nullable=True))
        batch_op.add_column(sa.Column("processing_started_at", sa.DateTime(), nullable=True))
        # Two submissions racing for the same subject and kind: the database keeps one.
        batch_op.create_index(
            "uq_dsar_requests_open",
            ["subject_id", "kind"],
            unique=True,
            sqlite_where=OPEN,
            postgresql_where=OPEN,
        )


def downgrade() -> None:
    with op.batch_alter_table("dsar_requests", schema=None) as batch_op:
        batch_op.drop_index("uq_dsar_requests_open", sqlite_where=OPEN, postgresql_where=OPEN)
        batch_op.drop_column("processing_started_at")
        batch_op.drop_column("deletion_record_id")
        batch_op.drop_column("extension_months")
