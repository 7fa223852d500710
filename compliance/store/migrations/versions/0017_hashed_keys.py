"""Keys the desk should not keep: unknown-subject lookups counted per API key.

Revision ID: 0017_hashed_keys
Revises: 0016_jurisdictions
Create Date: 2026-12-05 10:00:00

The intake API answers 404 for an unknown subject; a key holder could walk the id space to
learn who exists. Each key now counts its unknown subjects in a one-minute window and is
refused (429) past a limit (issue 30, item 4).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_hashed_keys"
down_revision: str | None = "0016_jurisdictions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch_op:
        batch_op.add_column(
            sa.Column("unknown_subjects", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("unknown_since", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch_op:
        batch_op.drop_column("unknown_since")
        batch_op.drop_column("unknown_subjects")
