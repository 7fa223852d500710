"""Scan findings: the last scan's columns of personal data per system, counts only.

Revision ID: 0014_scan_findings
Revises: 0013_free_texts
Create Date: 2026-12-01 09:00:00

scan-personal-data --execute keeps what it found per column (category, the recognisers that
said so, how many sampled values matched, what the policy does with it), never a value, so
the Data map page highlights it and a new uncovered column is announced once (issue 28).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_scan_findings"
down_revision: str | None = "0013_free_texts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "scan_findings",
        sa.Column("id", BigId, nullable=False),
        sa.Column("system", sa.String(length=100), nullable=False),
        sa.Column("table_name", sa.String(length=255), nullable=False),
        sa.Column("column_name", sa.String(length=255), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("recognisers", sa.String(length=255), nullable=False),
        sa.Column("sampled", sa.Integer(), nullable=False),
        sa.Column("matched", sa.Integer(), nullable=False),
        sa.Column("scanned_at", sa.DateTime(), nullable=False),
        sa.Column("alerted_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint(
            "status IN ('uncovered', 'left_as_is', 'retained', 'deleted', 'anonymized', "
            "'accepted')",
            name="ck_scan_findings_status",
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_scan_findings_system", "scan_findings", ["system"])


def downgrade() -> None:
    op.drop_index("ix_scan_findings_system", table_name="scan_findings")
    op.drop_table("scan_findings")
