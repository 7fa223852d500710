"""Plan links: an accepted plan records how each table finds the subject (issue 25).

Revision ID: 0010_plan_links
Revises: 0009_tallies
Create Date: 2026-12-02 10:00:00

A plan used to record tables, actions and columns only; a ``subject_column`` changed after
acceptance then erased other people's rows. Plans now also record each table's link
(``subject_column`` or ``via`` hop, and system) and the ``[subjects]`` table and key.

A plan stored before this revision cannot be given its links here: the links live in the
policy file, which a migration does not read (it may run where no policy is deployed, and
it must not import the loader, which keeps changing). So this revision adds
``erasure_plans.links_hash`` and leaves it NULL on every old plan; ``init-db`` records the
links in force right after upgrading (``compliance.deletion.plans.record_missing_links``,
one ``plans.links_recorded`` audit event naming the plans and batches), and an upgrade
made another way (``alembic upgrade``) is completed by the first apply-deletions or
replay-erasures run (with --execute). Old plans keep their hash and content: the
copy with links is a new plan that the old one points at.

Downgrading drops the column; plans stored since keep their new shape, which code older
than this revision cannot read.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_plan_links"
down_revision: str | None = "0009_tallies"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("erasure_plans") as batch_op:
        batch_op.add_column(sa.Column("links_hash", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("erasure_plans") as batch_op:
        batch_op.drop_column("links_hash")
