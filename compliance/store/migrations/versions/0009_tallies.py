"""Tallies: counts of deletion records and erasure tasks, kept by the database as they change.

Revision ID: 0009_tallies
Revises: 0008_due_index
Create Date: 2026-11-26 16:00:00

Progress counted every figure from all deletion records and all erasure tasks on each view:
0.6 s of reads at a million records (issue 13). Triggers now keep the counts as every change
happens, whoever writes (a job, the dashboard, an operator's SQL), so the page sums a few
hundred rows.

Each statement appends signed deltas (one row per key whose count it changed); nothing is
updated in place, so concurrent writers never wait on a counter row. Jobs fold the deltas
together when they finish (compliance.store.tallies). On PostgreSQL the triggers run once
per statement over its transition tables; SQLite has only row triggers.

Records are counted per bucket, state and week. The state below restates
``RECORD_STATE_SQL`` (compliance.store.queries) as it stood at this revision, as a migration
must; tests/store/test_tallies.py checks the two agree. A record counts in the week of what last
happened to it: applied ones in the week applied, failed and excluded ones in the week last
changed, the rest in the week found. Tasks are counted per system and status.
"""

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from alembic import op

revision: str = "0009_tallies"
down_revision: str | None = "0008_due_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


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


class Tally(NamedTuple):
    table: str  # the tallies
    source: str  # the table counted
    columns: list[tuple[str, Any]]  # the key: names and SQL types
    counted: str  # the count column
    #: (key column, its SQL expression over the row alias) for a dialect.
    key: Callable[[str, str], list[tuple[str, str]]]


TALLIES = [
    Tally(
        "deletion_record_tallies",
        "deletion_records",
        [("bucket", sa.String(100)), ("state", sa.String(20)), ("week", sa.Date())],
        "records",
        lambda r, d: [("bucket", f"{r}.bucket"), ("state", _state(r)), ("week", _week(r, d))],
    ),
    Tally(
        "erasure_task_tallies",
        "erasure_tasks",
        [("system", sa.String(100)), ("status", sa.String(20))],
        "tasks",
        lambda r, d: [("system", f"{r}.system"), ("status", f"{r}.status")],
    ),
]


def _keyed(t: Tally, r: str, dialect: str) -> str:
    return "SELECT " + ", ".join(f"{expr} AS {name}" for name, expr in t.key(r, dialect))


def _names(t: Tally) -> str:
    return ", ".join(name for name, _ in t.columns)


def _pg_function(t: Tally) -> str:
    keys, into = _names(t), f"INSERT INTO {t.table} ({_names(t)}, {t.counted})"
    return f"""
CREATE FUNCTION {t.source}_tally() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {into}
        SELECT {keys}, count(*) FROM ({_keyed(t, "n", "postgresql")} FROM new_rows n) k
        GROUP BY {keys};
    ELSIF TG_OP = 'DELETE' THEN
        {into}
        SELECT {keys}, -count(*) FROM ({_keyed(t, "o", "postgresql")} FROM old_rows o) k
        GROUP BY {keys};
    ELSE
        {into}
        SELECT {keys}, sum(d) FROM (
            {_keyed(t, "n", "postgresql")}, 1 AS d FROM new_rows n
            UNION ALL
            {_keyed(t, "o", "postgresql")}, -1 AS d FROM old_rows o
        ) k
        GROUP BY {keys} HAVING sum(d) <> 0;
    END IF;
    RETURN NULL;
END
$$
"""


_EVENTS = {
    "insert": "REFERENCING NEW TABLE AS new_rows",
    "update": "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
    "delete": "REFERENCING OLD TABLE AS old_rows",
}


def _pg_triggers(t: Tally) -> list[str]:
    return [
        f"CREATE TRIGGER {t.source}_tally_{event} AFTER {event.upper()} ON {t.source} "
        f"{referencing} FOR EACH STATEMENT EXECUTE FUNCTION {t.source}_tally()"
        for event, referencing in _EVENTS.items()
    ]


def _sqlite_triggers(t: Tally) -> list[str]:
    def row(r: str, sign: int) -> str:
        values = ", ".join(expr for _, expr in t.key(r, "sqlite"))
        return f"INSERT INTO {t.table} ({_names(t)}, {t.counted}) VALUES ({values}, {sign});"

    def key(r: str) -> str:
        return " || '|' || ".join(expr for _, expr in t.key(r, "sqlite"))

    return [
        f"CREATE TRIGGER {t.source}_tally_insert AFTER INSERT ON {t.source} "
        f"BEGIN {row('NEW', 1)} END",
        f"CREATE TRIGGER {t.source}_tally_update AFTER UPDATE ON {t.source} "
        f"WHEN {key('OLD')} IS NOT {key('NEW')} BEGIN {row('OLD', -1)} {row('NEW', 1)} END",
        f"CREATE TRIGGER {t.source}_tally_delete AFTER DELETE ON {t.source} "
        f"BEGIN {row('OLD', -1)} END",
    ]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for t in TALLIES:
        op.create_table(
            t.table,
            sa.Column(
                "id",
                sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                primary_key=True,
                autoincrement=True,
            ),
            *[sa.Column(name, kind, nullable=False) for name, kind in t.columns],
            sa.Column(t.counted, sa.Integer(), nullable=False),
        )
        # The rows already there, counted once; the triggers take over from here.
        keys = _names(t)
        op.execute(
            f"INSERT INTO {t.table} ({keys}, {t.counted}) SELECT {keys}, count(*) FROM "
            f"({_keyed(t, 'r', dialect)} FROM {t.source} r) k GROUP BY {keys}"
        )
        if dialect == "postgresql":
            op.execute(_pg_function(t))
            for statement in _pg_triggers(t):
                op.execute(statement)
        else:
            for statement in _sqlite_triggers(t):
                op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for t in reversed(TALLIES):
        for event in _EVENTS:
            on = f" ON {t.source}" if dialect == "postgresql" else ""
            op.execute(f"DROP TRIGGER {t.source}_tally_{event}{on}")
        if dialect == "postgresql":
            op.execute(f"DROP FUNCTION {t.source}_tally()")
        op.drop_table(t.table)
