"""The database refuses a status no lifecycle knows (compliance/store/states.py).

Values are spelled here as they stood when this migration was written, so a later
change to an enum needs a migration of its own.

Revision ID: 0003_states
Revises: 0004_decisions
Create Date: 2026-11-25 18:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003_states"
down_revision: str | None = "0004_decisions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHECKS = [
    # (table, constraint, condition)
    (
        "deletion_batches",
        "ck_deletion_batches_status",
        "reviewed_status IN ('pending', 'accepted', 'rejected')",
    ),
    (
        "dsar_requests",
        "ck_dsar_requests_status",
        "status IN ('pending', 'approved', 'rejected', 'processing', 'completed', 'failed')",
    ),
    ("dsar_requests", "ck_dsar_requests_kind", "kind IN ('access', 'erasure')"),
    (
        "job_runs",
        "ck_job_runs_status",
        "status IN ('running', 'succeeded', 'failed', 'skipped', 'refused', 'crashed')",
    ),
]


def upgrade() -> None:
    # SQLite cannot add a constraint to a table; batch mode rebuilds the table with it.
    for table, name, condition in CHECKS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_check_constraint(name, condition)


def downgrade() -> None:
    for table, name, _ in reversed(CHECKS):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(name, type_="check")
