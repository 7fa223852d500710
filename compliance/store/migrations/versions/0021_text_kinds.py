"""A typed text is tied to a subject by kind and key, as everything else names a subject.

Revision ID: 0021_text_kinds
Revises: 0020_subject_types
Create Date: 2026-12-07 23:00:00

Issue 30: erasing employee 5 deleted every text tied to the key '5', customer '5''s too (the
values of their open rectification among them), and hashing one's key renamed the other's
ties. A text's subjects are always of one kind (one request's, one batch's bucket's), so
the kind is a column beside the key, not part of the key; rows before it are ``default``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021_text_kinds"
down_revision: str | None = "0020_subject_types"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "free_text_subjects",
        sa.Column("subject_type", sa.String(64), nullable=False, server_default="default"),
    )


def downgrade() -> None:
    with op.batch_alter_table("free_text_subjects") as batch:
        batch.drop_column("subject_type")
