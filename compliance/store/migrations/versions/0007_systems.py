"""Systems: a task per system for every deletion record and DSAR request.

Revision ID: 0007_systems
Revises: 0006_desk
Create Date: 2026-11-25 17:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_systems"
down_revision: str | None = "0006_desk"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "erasure_tasks",
        sa.Column("id", BigId, nullable=False),
        sa.Column("deletion_record_id", BigId, nullable=True),
        sa.Column("dsar_request_id", BigId, nullable=True),
        sa.Column("system", sa.String(length=100), nullable=False),
        sa.Column("system_kind", sa.String(length=20), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.JSON(), nullable=True),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("accepted_at", sa.DateTime(), nullable=True),
        sa.Column("done_at", sa.DateTime(), nullable=True),
        sa.Column("done_by", sa.String(length=255), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("file_path", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'done', 'failed', 'skipped')",
            name="ck_erasure_tasks_status",
        ),
        sa.CheckConstraint(
            "(deletion_record_id IS NULL) <> (dsar_request_id IS NULL)",
            name="ck_erasure_tasks_owner",
        ),
        sa.ForeignKeyConstraint(
            ["deletion_record_id"], ["deletion_records.id"], ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["dsar_request_id"], ["dsar_requests.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    with op.batch_alter_table("erasure_tasks", schema=None) as batch_op:
        batch_op.create_index(
            "uq_erasure_tasks_record", ["deletion_record_id", "system"], unique=True
        )
        batch_op.create_index(
            "uq_erasure_tasks_request", ["dsar_request_id", "system"], unique=True
        )
        batch_op.create_index("ix_erasure_tasks_status", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("erasure_tasks")
