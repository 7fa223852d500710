"""Decisions that hold: legal holds, the decision ledger, accepted plans, permanent figures.

Revision ID: 0004_decisions
Revises: 0007_systems
Create Date: 2026-11-25 17:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_decisions"
down_revision: str | None = "0007_systems"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "legal_holds",
        sa.Column("id", BigId, nullable=False),
        sa.Column("compliance_profile_id", BigId, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("placed_by", sa.String(length=255), nullable=False),
        sa.Column("placed_at", sa.DateTime(), nullable=False),
        sa.Column("until", sa.DateTime(), nullable=True),
        sa.Column("lifted_at", sa.DateTime(), nullable=True),
        sa.Column("lifted_by", sa.String(length=255), nullable=True),
        sa.Column("lifted_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["compliance_profile_id"], ["compliance_profiles.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_legal_holds_compliance_profile_id", "legal_holds", ["compliance_profile_id"]
    )
    op.create_table(
        "erasure_plans",
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("plan", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("hash"),
    )
    op.create_table(
        "decision_ledger",
        sa.Column("id", BigId, nullable=False),
        sa.Column("compliance_profile_id", BigId, nullable=False),
        sa.Column("bucket", sa.String(length=100), nullable=False),
        sa.Column("decision", sa.String(length=20), nullable=False),
        sa.Column("reviewer", sa.String(length=255), nullable=True),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("applied_at", sa.DateTime(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("plan_hash", sa.String(length=64), nullable=True),
        sa.Column("deletion_record_id", BigId, nullable=True),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["compliance_profile_id"], ["compliance_profiles.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_decision_ledger_profile_bucket", "decision_ledger", ["compliance_profile_id", "bucket"]
    )
    op.create_index("ix_decision_ledger_applied_at", "decision_ledger", ["applied_at"])
    op.create_table(
        "deletion_aggregates",
        sa.Column("bucket", sa.String(length=100), nullable=False),
        sa.Column("week", sa.Date(), nullable=False),
        sa.Column("records_erased", sa.Integer(), nullable=False),
        sa.Column("records_kept", sa.Integer(), nullable=False),
        sa.Column("batches_accepted", sa.Integer(), nullable=False),
        sa.Column("batches_rejected", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("bucket", "week"),
    )
    # Plain ADD COLUMN (no table copy on SQLite): the partial unique index stays as it is.
    op.add_column(
        "deletion_batches", sa.Column("accepted_plan_hash", sa.String(length=64), nullable=True)
    )
    op.add_column(
        "deletion_records", sa.Column("blocked_plan_hash", sa.String(length=64), nullable=True)
    )
    op.add_column(
        "deletion_records", sa.Column("applied_plan_hash", sa.String(length=64), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("deletion_records", schema=None) as batch_op:
        batch_op.drop_column("applied_plan_hash")
        batch_op.drop_column("blocked_plan_hash")
    with op.batch_alter_table("deletion_batches", schema=None) as batch_op:
        batch_op.drop_column("accepted_plan_hash")
    op.drop_table("deletion_aggregates")
    op.drop_index("ix_decision_ledger_applied_at", table_name="decision_ledger")
    op.drop_index("ix_decision_ledger_profile_bucket", table_name="decision_ledger")
    op.drop_table("decision_ledger")
    op.drop_table("erasure_plans")
    op.drop_index("ix_legal_holds_compliance_profile_id", table_name="legal_holds")
    op.drop_table("legal_holds")
