"""A data subject is a kind and a key: customer 'ALFKI' and employee 5 are different people.

Revision ID: 0020_subject_types
Revises: 0019_request_changes
Create Date: 2026-12-07 22:30:00

Issue 30: a policy may declare several kinds of data subject ([subjects.NAME]), each with
its own table and key. Customer 5 and employee 5 must not share a profile (and with it
holds, decisions and cool-offs), an open request, or a support export. Profiles, requests
and support exports gain ``subject_type``; every row written before is the one kind a plain
[subjects] section declares, ``default``.

Profiles are unique per (subject_id, subject_type), subject_id first so lookups by key alone
(a hashed key's, say) keep their index; one open request per (subject, kind of subject,
kind of request).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020_subject_types"
down_revision: str | None = "0019_request_changes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT = "default"
PROFILE_KEY = "uq_compliance_profiles_subject"
OPEN_INDEX = "uq_dsar_requests_open"
OPEN = sa.text("status IN ('pending', 'approved', 'processing', 'ready', 'failed')")
#: SQLite's unique constraint from 0001 has no name; batch mode names it by this to drop it.
_CONVENTION = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _subject_type() -> sa.Column[str]:
    return sa.Column("subject_type", sa.String(64), nullable=False, server_default=DEFAULT)


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.add_column("compliance_profiles", _subject_type())
        op.drop_constraint("compliance_profiles_subject_id_key", "compliance_profiles", "unique")
        op.create_unique_constraint(
            PROFILE_KEY, "compliance_profiles", ["subject_id", "subject_type"]
        )
    else:
        with op.batch_alter_table("compliance_profiles", naming_convention=_CONVENTION) as batch:
            batch.add_column(_subject_type())
            batch.drop_constraint("uq_compliance_profiles_subject_id", type_="unique")
            batch.create_unique_constraint(PROFILE_KEY, ["subject_id", "subject_type"])
    # Plain ALTERs on dsar_requests: a batch rebuild would drop 0019's SQLite triggers.
    op.add_column("dsar_requests", _subject_type())
    op.drop_index(OPEN_INDEX, table_name="dsar_requests", sqlite_where=OPEN, postgresql_where=OPEN)
    op.create_index(
        OPEN_INDEX,
        "dsar_requests",
        ["subject_id", "subject_type", "kind"],
        unique=True,
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )
    op.add_column("user_exports", _subject_type())


def downgrade() -> None:
    # Below 0020 a key is one subject: two kinds sharing one cannot go back (said, not a
    # constraint's error; the key itself is not printed).
    shared = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT count(*) FROM (SELECT subject_id FROM compliance_profiles "
                "GROUP BY subject_id HAVING count(*) > 1) AS shared"
            )
        )
        .scalar()
    )
    if shared:
        raise RuntimeError(
            f"cannot downgrade below 0020_subject_types: {shared} key(s) name subjects of "
            "more than one kind; erase or merge them first"
        )
    op.drop_index(OPEN_INDEX, table_name="dsar_requests", sqlite_where=OPEN, postgresql_where=OPEN)
    op.create_index(
        OPEN_INDEX,
        "dsar_requests",
        ["subject_id", "kind"],
        unique=True,
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )
    if op.get_bind().dialect.name == "postgresql":
        op.drop_column("dsar_requests", "subject_type")
        op.drop_column("user_exports", "subject_type")
        op.drop_constraint(PROFILE_KEY, "compliance_profiles", "unique")
        op.create_unique_constraint(
            "compliance_profiles_subject_id_key", "compliance_profiles", ["subject_id"]
        )
        op.drop_column("compliance_profiles", "subject_type")
        return
    op.drop_column("dsar_requests", "subject_type")  # SQLite 3.35+ drops a plain column
    with op.batch_alter_table("user_exports") as batch:
        batch.drop_column("subject_type")
    with op.batch_alter_table("compliance_profiles") as batch:
        batch.drop_constraint(PROFILE_KEY, type_="unique")
        batch.create_unique_constraint("uq_compliance_profiles_subject_id", ["subject_id"])
        batch.drop_column("subject_type")
