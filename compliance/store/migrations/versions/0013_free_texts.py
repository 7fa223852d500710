"""Free text forgets: reasons and notes kept outside the hash chain, tied to their subjects.

Revision ID: 0013_free_texts
Revises: 0012_erasure_decision
Create Date: 2026-11-28 10:00:00

An audit event names a reason by its keyed hash; the text sits in free_texts, tied to the
subjects it may describe (free_text_subjects), so erasing a subject deletes it while every
event and anchor still verifies (issue 25, item 5). Events written before this revision keep
their text: the chain forbids changing them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_free_texts"
down_revision: str | None = "0012_erasure_decision"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "free_texts",
        sa.Column("id", BigId, nullable=False),
        sa.Column("hash", sa.String(length=80), nullable=False),
        sa.Column("salt", sa.String(length=32), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("hash"),
    )
    op.create_table(
        "free_text_subjects",
        sa.Column("free_text_id", BigId, nullable=False),
        sa.Column("subject_id", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(["free_text_id"], ["free_texts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("free_text_id", "subject_id"),
    )
    op.create_index("ix_free_text_subjects_subject_id", "free_text_subjects", ["subject_id"])


def downgrade() -> None:
    op.drop_index("ix_free_text_subjects_subject_id", table_name="free_text_subjects")
    op.drop_table("free_text_subjects")
    op.drop_table("free_texts")
