"""The compliance schema: profiles, deletion records and batches, DSAR, job runs, audit.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 11:40:49.143751
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# BIGINT on PostgreSQL; INTEGER on SQLite so ids stay auto-incrementing rowids.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# The audit trail is evidence: on PostgreSQL the database itself refuses to change it.
AUDIT_GUARD = """
CREATE FUNCTION audit_events_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_events_no_update_delete BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
"""


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", BigId, nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("target_type", sa.String(length=50), nullable=False),
        sa.Column("target_id", sa.String(length=255), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("hash"),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_events_action"), ["action"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_events_actor"), ["actor"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_audit_events_occurred_at"), ["occurred_at"], unique=False
        )

    op.create_table(
        "compliance_profiles",
        sa.Column("id", BigId, nullable=False),
        sa.Column("subject_id", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subject_id"),
    )
    op.create_table(
        "deletion_batches",
        sa.Column("id", BigId, nullable=False),
        sa.Column("bucket", sa.String(length=100), nullable=False),
        sa.Column("reviewed_status", sa.String(length=20), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(), nullable=True),
        sa.Column("reviewed_by", sa.String(length=255), nullable=True),
        sa.Column("reviewed_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("deletion_batches", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deletion_batches_bucket"), ["bucket"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_deletion_batches_reviewed_status"), ["reviewed_status"], unique=False
        )

    op.create_table(
        "dsar_requests",
        sa.Column("id", BigId, nullable=False),
        sa.Column("reference", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("subject_id", sa.String(length=255), nullable=False),
        sa.Column("subject_email", sa.String(length=320), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("requested_by", sa.String(length=255), nullable=False),
        sa.Column("requested_at", sa.DateTime(), nullable=False),
        sa.Column("identity_check", sa.Text(), nullable=True),
        sa.Column("due_at", sa.DateTime(), nullable=False),
        sa.Column("extended_due_at", sa.DateTime(), nullable=True),
        sa.Column("extension_reason", sa.Text(), nullable=True),
        sa.Column("reviewed_by", sa.String(length=255), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(), nullable=True),
        sa.Column("reviewed_reason", sa.Text(), nullable=True),
        sa.Column("completed_at", sa.DateTime(), nullable=True),
        sa.Column("export_path", sa.Text(), nullable=True),
        sa.Column("export_bytes", sa.BigInteger(), nullable=True),
        sa.Column("export_sha256", sa.String(length=64), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("reference"),
    )
    with op.batch_alter_table("dsar_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dsar_requests_status"), ["status"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_dsar_requests_subject_id"), ["subject_id"], unique=False
        )

    op.create_table(
        "job_runs",
        sa.Column("id", BigId, nullable=False),
        sa.Column("job", sa.String(length=100), nullable=False),
        sa.Column("arguments", sa.JSON(), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("job_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_job_runs_job"), ["job"], unique=False)

    op.create_table(
        "deletion_records",
        sa.Column("id", BigId, nullable=False),
        sa.Column("compliance_profile_id", BigId, nullable=False),
        sa.Column("bucket", sa.String(length=100), nullable=False),
        sa.Column("deletion_batch_id", BigId, nullable=True),
        sa.Column("deletion_scheduled_at", sa.DateTime(), nullable=False),
        sa.Column("deletion_applied_at", sa.DateTime(), nullable=True),
        sa.Column("accepted_for_deletion", sa.Boolean(), nullable=True),
        sa.Column("is_manually_reviewed", sa.Boolean(), nullable=False),
        sa.Column("review_note", sa.Text(), nullable=True),
        sa.Column("deletion_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["compliance_profile_id"], ["compliance_profiles.id"], ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["deletion_batch_id"], ["deletion_batches.id"], ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("deletion_records", schema=None) as batch_op:
        batch_op.create_index("ix_deletion_records_batch", ["deletion_batch_id"], unique=False)
        batch_op.create_index(
            "ix_deletion_records_bucket_state", ["bucket", "accepted_for_deletion"], unique=False
        )
        batch_op.create_index(
            "uq_deletion_records_open",
            ["compliance_profile_id", "bucket"],
            unique=True,
            sqlite_where=sa.text("deletion_applied_at IS NULL"),
            postgresql_where=sa.text("deletion_applied_at IS NULL"),
        )

    op.create_table(
        "dsar_deliveries",
        sa.Column("id", BigId, nullable=False),
        sa.Column("dsar_request_id", BigId, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("otp_hash", sa.String(length=128), nullable=False),
        sa.Column("otp_salt", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("token_expires_at", sa.DateTime(), nullable=False),
        sa.Column("otp_expires_at", sa.DateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("locked_at", sa.DateTime(), nullable=True),
        sa.Column("downloaded_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["dsar_request_id"], ["dsar_requests.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("dsar_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dsar_deliveries_dsar_request_id"), ["dsar_request_id"], unique=False
        )

    if op.get_bind().dialect.name == "postgresql":
        op.execute(AUDIT_GUARD)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_events_no_truncate ON audit_events")
        op.execute("DROP TRIGGER audit_events_no_update_delete ON audit_events")
        op.execute("DROP FUNCTION audit_events_append_only()")
    with op.batch_alter_table("dsar_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dsar_deliveries_dsar_request_id"))

    op.drop_table("dsar_deliveries")
    with op.batch_alter_table("deletion_records", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_deletion_records_open",
            sqlite_where=sa.text("deletion_applied_at IS NULL"),
            postgresql_where=sa.text("deletion_applied_at IS NULL"),
        )
        batch_op.drop_index("ix_deletion_records_bucket_state")
        batch_op.drop_index("ix_deletion_records_batch")

    op.drop_table("deletion_records")
    with op.batch_alter_table("job_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_runs_job"))

    op.drop_table("job_runs")
    with op.batch_alter_table("dsar_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dsar_requests_subject_id"))
        batch_op.drop_index(batch_op.f("ix_dsar_requests_status"))

    op.drop_table("dsar_requests")
    with op.batch_alter_table("deletion_batches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deletion_batches_reviewed_status"))
        batch_op.drop_index(batch_op.f("ix_deletion_batches_bucket"))

    op.drop_table("deletion_batches")
    op.drop_table("compliance_profiles")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_events_occurred_at"))
        batch_op.drop_index(batch_op.f("ix_audit_events_actor"))
        batch_op.drop_index(batch_op.f("ix_audit_events_action"))

    op.drop_table("audit_events")
