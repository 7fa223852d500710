"""Record tallies: counts of deletion records per bucket, state and week, kept by the database.

Revision ID: 0009_record_tallies
Revises: 0008_due_index
Create Date: 2026-11-26 16:00:00

Progress counted every figure from all deletion records on each view: 0.6 s of reads at a
million records (issue 13). Triggers now keep the counts as every change happens, whoever
writes (a job, the dashboard, an operator's SQL), so the page sums a few hundred rows.

Each statement appends signed deltas (one row per bucket, state and week whose count it
changed); nothing is updated in place, so concurrent writers never wait on a counter row.
Jobs fold the deltas together when they finish (compliance.deletion.ledger.compact_tallies).
On PostgreSQL the triggers run once per statement over its transition tables; SQLite has
only row triggers.

The state below restates ``RECORD_STATE_SQL`` (compliance.store.queries) as it stood at this
revision, as a migration must; tests/test_record_tallies.py checks the two agree. A record
counts in the week of what last happened to it: applied ones in the week applied, failed and
excluded ones in the week last changed, the rest in the week found.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_record_tallies"
down_revision: str | None = "0008_due_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "deletion_record_tallies"


def _state(r: str) -> str:
    return (
        f"CASE WHEN {r}.deletion_applied_at IS NOT NULL THEN 'applied' "
        f"WHEN {r}.accepted_for_deletion = FALSE THEN 'excluded' "
        f"WHEN {r}.accepted_for_deletion = TRUE AND {r}.deletion_error IS NULL "
        "THEN 'pending_apply' "
        f"WHEN {r}.accepted_for_deletion = TRUE THEN 'failed' "
        f"WHEN {r}.deletion_batch_id IS NULL THEN 'unbatched' "
        "ELSE 'awaiting_review' END"
    )


def _moment(r: str) -> str:
    return (
        f"CASE WHEN {r}.deletion_applied_at IS NOT NULL THEN {r}.deletion_applied_at "
        f"WHEN {r}.accepted_for_deletion IS NOT NULL AND ({r}.accepted_for_deletion = FALSE "
        f"OR {r}.deletion_error IS NOT NULL) THEN {r}.updated_at "
        f"ELSE {r}.created_at END"
    )


def _week(r: str, dialect: str) -> str:
    """The Monday of the moment's week, as compliance.deletion.ledger.week_of computes it."""
    if dialect == "postgresql":
        return f"CAST(date_trunc('week', {_moment(r)}) AS date)"
    return f"date({_moment(r)}, 'weekday 0', '-6 days')"


def _keyed(r: str, dialect: str) -> str:
    return f"SELECT {r}.bucket AS bucket, {_state(r)} AS state, {_week(r, dialect)} AS week"


PG_FUNCTION = f"""
CREATE FUNCTION deletion_record_tally() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO {TABLE} (bucket, state, week, records)
        SELECT bucket, state, week, count(*) FROM ({_keyed("n", "postgresql")} FROM new_rows n) k
        GROUP BY bucket, state, week;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO {TABLE} (bucket, state, week, records)
        SELECT bucket, state, week, -count(*) FROM ({_keyed("o", "postgresql")} FROM old_rows o) k
        GROUP BY bucket, state, week;
    ELSE
        INSERT INTO {TABLE} (bucket, state, week, records)
        SELECT bucket, state, week, sum(d) FROM (
            {_keyed("n", "postgresql")}, 1 AS d FROM new_rows n
            UNION ALL
            {_keyed("o", "postgresql")}, -1 AS d FROM old_rows o
        ) k
        GROUP BY bucket, state, week HAVING sum(d) <> 0;
    END IF;
    RETURN NULL;
END
$$
"""

PG_TRIGGERS = [
    "CREATE TRIGGER deletion_records_tally_insert AFTER INSERT ON deletion_records "
    "REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION deletion_record_tally()",
    "CREATE TRIGGER deletion_records_tally_update AFTER UPDATE ON deletion_records "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION deletion_record_tally()",
    "CREATE TRIGGER deletion_records_tally_delete AFTER DELETE ON deletion_records "
    "REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION deletion_record_tally()",
]


def _sqlite_row(r: str, sign: int) -> str:
    return (
        f"INSERT INTO {TABLE} (bucket, state, week, records) "
        f"VALUES ({r}.bucket, {_state(r)}, {_week(r, 'sqlite')}, {sign});"
    )


def _sqlite_key(r: str) -> str:
    return f"{r}.bucket || '|' || {_state(r)} || '|' || {_week(r, 'sqlite')}"


SQLITE_TRIGGERS = [
    "CREATE TRIGGER deletion_records_tally_insert AFTER INSERT ON deletion_records "
    f"BEGIN {_sqlite_row('NEW', 1)} END",
    "CREATE TRIGGER deletion_records_tally_update AFTER UPDATE ON deletion_records "
    f"WHEN {_sqlite_key('OLD')} IS NOT {_sqlite_key('NEW')} "
    f"BEGIN {_sqlite_row('OLD', -1)} {_sqlite_row('NEW', 1)} END",
    "CREATE TRIGGER deletion_records_tally_delete AFTER DELETE ON deletion_records "
    f"BEGIN {_sqlite_row('OLD', -1)} END",
]

TRIGGER_NAMES = ["deletion_records_tally_insert", "deletion_records_tally_update",
                 "deletion_records_tally_delete"]  # fmt: skip


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        TABLE,
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("bucket", sa.String(100), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("week", sa.Date(), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
    )
    # The records already there, counted once; the triggers take over from here.
    op.execute(
        f"INSERT INTO {TABLE} (bucket, state, week, records) "
        f"SELECT bucket, state, week, count(*) FROM ({_keyed('r', dialect)} "
        "FROM deletion_records r) k GROUP BY bucket, state, week"
    )
    if dialect == "postgresql":
        op.execute(PG_FUNCTION)
        for statement in PG_TRIGGERS:
            op.execute(statement)
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name in TRIGGER_NAMES:
        if dialect == "postgresql":
            op.execute(f"DROP TRIGGER {name} ON deletion_records")
        else:
            op.execute(f"DROP TRIGGER {name}")
    if dialect == "postgresql":
        op.execute("DROP FUNCTION deletion_record_tally()")
    op.drop_table(TABLE)
