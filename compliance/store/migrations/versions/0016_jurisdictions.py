"""Jurisdictions: each request falls under one law, which sets its deadline and extension.

Revision ID: 0016_jurisdictions
Revises: 0015_export_storage
Create Date: 2026-12-05 10:00:00

A request stores its jurisdiction ([jurisdictions.NAME] in the policy), the latest its
deadline may be extended to there, computed at intake as due_at is, and the days it was
extended by besides extension_months. Every request logged before this revision was logged
under GDPR Art. 12(3): one calendar month, extendable by two, so its latest deadline is three
calendar months after receipt.
"""

import calendar
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0016_jurisdictions"
down_revision: str | None = "0015_export_storage"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# The request table's two checks as they stand at this revision. SQLite's batch mode copies
# reflected checks in no fixed order; dropped and made again, they come out the same every time.
CHECKS = (
    ("ck_dsar_requests_kind", "kind IN ('access', 'erasure')"),
    (
        "ck_dsar_requests_status",
        "status IN ('pending', 'approved', 'rejected', 'processing', 'ready', 'completed',"
        " 'failed')",
    ),
)


def _three_months_after(moment: datetime) -> datetime:
    """GDPR's latest deadline, as compliance.dsar.deadlines computes it (kept here as it was)."""
    index = moment.month - 1 + 3
    year, month = moment.year + index // 12, index % 12 + 1
    return moment.replace(
        year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1])
    )


def upgrade() -> None:
    with op.batch_alter_table("dsar_requests", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("jurisdiction", sa.String(length=64), nullable=False, server_default="gdpr")
        )
        batch_op.add_column(sa.Column("latest_due_at", sa.DateTime(), nullable=True))
        batch_op.add_column(
            sa.Column("extension_days", sa.Integer(), nullable=False, server_default="0")
        )
    requests = sa.table(
        "dsar_requests",
        sa.column("id", sa.BigInteger()),
        sa.column("requested_at", sa.DateTime()),
        sa.column("latest_due_at", sa.DateTime()),
    )
    connection = op.get_bind()
    for row in connection.execute(sa.select(requests.c.id, requests.c.requested_at)).all():
        connection.execute(
            requests.update()
            .where(requests.c.id == row.id)
            .values(latest_due_at=_three_months_after(row.requested_at))
        )
    with op.batch_alter_table("dsar_requests", schema=None) as batch_op:
        # SQLite's batch mode rebuilds the table; its indexes (the partial one too) come along.
        batch_op.alter_column("latest_due_at", existing_type=sa.DateTime(), nullable=False)
        for name, _ in CHECKS:
            batch_op.drop_constraint(name, type_="check")
        for name, condition in CHECKS:
            batch_op.create_check_constraint(name, condition)


def downgrade() -> None:
    with op.batch_alter_table("dsar_requests", schema=None) as batch_op:
        batch_op.drop_column("extension_days")
        batch_op.drop_column("latest_due_at")
        batch_op.drop_column("jurisdiction")
