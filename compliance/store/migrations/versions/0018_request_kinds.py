"""More rights on the desk: objection, restriction, rectification and portability.

Revision ID: 0018_request_kinds
Revises: 0017_hashed_keys
Create Date: 2026-12-01 09:00:00

Issue 27: an objection (GDPR Art. 21) is a request like access and erasure, with a scope
(``dsar_requests.scope``), and leaves a suppression that outlives the subject's erasure
(``suppressions``: profile id, scope and the keyed hash of the email, never the email).
A restriction of processing (Art. 18) is a hold: ``legal_holds.kind`` says which kind
(``legal`` for every hold placed so far) and a restriction names its request. A
rectification (Art. 16) asks for corrections (``dsar_corrections``), whose new values are
free texts (``free_texts``), kept by keyed hash and erased with their subject. Portability
(Art. 20) is an access export of what the subject provided: a kind, no table of its own.
A request's system may get a task per action (told a restriction started, then ended).

Values are spelled here as they stand at this revision (see 0003_states).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_request_kinds"
down_revision: str | None = "0017_hashed_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
KIND = "ck_dsar_requests_kind"
OPEN_INDEX = "uq_dsar_requests_open"
KINDS_BEFORE = "kind IN ('access', 'erasure')"
KINDS_AFTER = (
    "kind IN ('access', 'erasure', 'objection', 'restriction', 'rectification', 'portability')"
)
HOLD_KIND = "ck_legal_holds_kind"
TASK_INDEX = "uq_erasure_tasks_request"
OPEN = sa.text("status IN ('pending', 'approved', 'processing', 'ready', 'failed')")


def _open_index() -> None:
    op.create_index(
        OPEN_INDEX,
        "dsar_requests",
        ["subject_id", "kind"],
        unique=True,
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )


def upgrade() -> None:
    # Dropped before SQLite's batch mode rebuilds the table, so it is not copied as it was.
    op.drop_index(OPEN_INDEX, table_name="dsar_requests")
    with op.batch_alter_table("dsar_requests", schema=None) as batch_op:
        batch_op.drop_constraint(KIND, type_="check")
        batch_op.create_check_constraint(KIND, KINDS_AFTER)
        batch_op.add_column(sa.Column("scope", sa.String(50), nullable=True))
    _open_index()
    op.create_table(
        "suppressions",
        sa.Column("id", BigId, nullable=False),
        sa.Column("compliance_profile_id", BigId, nullable=False),
        sa.Column("scope", sa.String(50), nullable=False),
        sa.Column("email_hash", sa.String(80), nullable=True),
        sa.Column("dsar_request_id", BigId, nullable=True),
        sa.Column("recorded_by", sa.String(255), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["compliance_profile_id"], ["compliance_profiles.id"]),
        sa.ForeignKeyConstraint(["dsar_request_id"], ["dsar_requests.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("legal_holds", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(20), nullable=False, server_default="legal")
        )
        batch_op.add_column(sa.Column("dsar_request_id", BigId, nullable=True))
        batch_op.create_check_constraint(HOLD_KIND, "kind IN ('legal', 'restriction')")
    op.create_table(
        "dsar_corrections",
        sa.Column("id", BigId, nullable=False),
        sa.Column("dsar_request_id", BigId, nullable=False),
        sa.Column("table_name", sa.String(100), nullable=True),
        sa.Column("column_name", sa.String(100), nullable=True),
        sa.Column("value_hash", sa.String(80), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["dsar_request_id"], ["dsar_requests.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_dsar_corrections_dsar_request_id", "dsar_corrections", ["dsar_request_id"])
    op.drop_index(TASK_INDEX, table_name="erasure_tasks")
    op.create_index(
        TASK_INDEX, "erasure_tasks", ["dsar_request_id", "system", "action"], unique=True
    )
    op.create_index("ix_suppressions_email_hash", "suppressions", ["email_hash"])
    op.create_index(
        "uq_suppressions_profile_scope",
        "suppressions",
        ["compliance_profile_id", "scope"],
        unique=True,
    )


def downgrade() -> None:
    newer = op.get_bind().scalar(
        sa.text("SELECT count(*) FROM dsar_requests WHERE NOT (" + KINDS_BEFORE + ")")
    )
    if newer:  # their evidence is not thrown away by a downgrade
        raise RuntimeError(f"{newer} request(s) of the newer kinds exist; not downgraded")
    op.drop_index(TASK_INDEX, table_name="erasure_tasks")
    op.create_index(TASK_INDEX, "erasure_tasks", ["dsar_request_id", "system"], unique=True)
    op.drop_index("uq_suppressions_profile_scope", table_name="suppressions")
    op.drop_index("ix_suppressions_email_hash", table_name="suppressions")
    op.drop_table("suppressions")
    op.drop_index("ix_dsar_corrections_dsar_request_id", table_name="dsar_corrections")
    op.drop_table("dsar_corrections")
    with op.batch_alter_table("legal_holds", schema=None) as batch_op:
        batch_op.drop_constraint(HOLD_KIND, type_="check")
        batch_op.drop_column("dsar_request_id")
        batch_op.drop_column("kind")
    op.drop_index(OPEN_INDEX, table_name="dsar_requests")
    with op.batch_alter_table("dsar_requests", schema=None) as batch_op:
        batch_op.drop_column("scope")
        batch_op.drop_constraint(KIND, type_="check")
        batch_op.create_check_constraint(KIND, KINDS_BEFORE)
    _open_index()
