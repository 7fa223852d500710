"""Export storage: support exports kept in the export store, and whose they are.

Revision ID: 0015_export_storage
Revises: 0014_scan_findings
Create Date: 2026-12-07 10:00:00

Export files may live in an S3-compatible bucket ([exports] storage = "s3"), under names that
say nothing about their subject (issue 29). Access exports and a system's parts are named by
their request and task rows already; support's direct exports (export-user-data) get this
table, so cleanup and erasure find them in a bucket too; a system's part of an access export
keeps the name it has in the ZIP beside its location (erasure_tasks.file_name).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_export_storage"
down_revision: str | None = "0014_scan_findings"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "user_exports",
        sa.Column("id", BigId, nullable=False),
        sa.Column("subject_id", sa.String(length=255), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("location"),
    )
    op.create_index("ix_user_exports_subject_id", "user_exports", ["subject_id"])
    op.create_index("ix_user_exports_created_at", "user_exports", ["created_at"])
    # Plain ADD COLUMN (no table copy on SQLite): the tallies' triggers stay as they are.
    op.add_column("erasure_tasks", sa.Column("file_name", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("erasure_tasks") as batch_op:
        batch_op.drop_column("file_name")
    op.drop_index("ix_user_exports_created_at", table_name="user_exports")
    op.drop_index("ix_user_exports_subject_id", table_name="user_exports")
    op.drop_table("user_exports")
