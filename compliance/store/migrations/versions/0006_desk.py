"""The request desk: API keys, structured identity checks, intake details, notes, notices, retries.

Revision ID: 0006_desk
Revises: 0002
Create Date: 2026-11-25 17:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_desk"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("key_prefix", sa.String(16), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_by", sa.String(255), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
    )
    with op.batch_alter_table("dsar_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("identity_method", sa.String(50), nullable=True))
        batch_op.add_column(sa.Column("channel", sa.String(20), nullable=True))
        batch_op.add_column(sa.Column("client_ip", sa.String(64), nullable=True))
        batch_op.add_column(sa.Column("user_agent", sa.String(512), nullable=True))
        batch_op.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("next_attempt_at", sa.DateTime(), nullable=True))
        batch_op.create_index(
            "ix_dsar_requests_subject_kind_requested", ["subject_id", "kind", "requested_at"]
        )
    op.create_table(
        "dsar_notes",
        sa.Column("id", BigId, primary_key=True),
        sa.Column(
            "dsar_request_id",
            BigId,
            sa.ForeignKey("dsar_requests.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("author", sa.String(255), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "dsar_notices",
        sa.Column("id", BigId, primary_key=True),
        sa.Column(
            "dsar_request_id",
            BigId,
            sa.ForeignKey("dsar_requests.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("dsar_notices")
    op.drop_table("dsar_notes")
    with op.batch_alter_table("dsar_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_dsar_requests_subject_kind_requested")
        batch_op.drop_column("next_attempt_at")
        batch_op.drop_column("attempts")
        batch_op.drop_column("user_agent")
        batch_op.drop_column("client_ip")
        batch_op.drop_column("channel")
        batch_op.drop_column("identity_method")
    op.drop_table("api_keys")
