"""Counts the database keeps as rows change, for figures that would otherwise scan everything.

Triggers (migration 0009) append signed deltas with every write to deletion_records and
erasure_tasks, whoever makes it; a count is the sum of its key's rows. Nothing is updated
in place, so writers never wait on each other here; jobs fold the deltas when they finish.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from compliance.store.models import DeletionTally, TaskTally

TALLIES: tuple[type[DeletionTally] | type[TaskTally], ...] = (DeletionTally, TaskTally)


def _count_column(model: type[DeletionTally] | type[TaskTally]) -> Any:
    table = model.__table__
    (column,) = [c for c in table.c if c.name not in ("id", *model.KEY)]
    return column


def tally_sums(
    session: Session, model: type[DeletionTally] | type[TaskTally]
) -> dict[tuple[Any, ...], int]:
    """Each key's count (keys whose rows sum to zero left out)."""
    table = model.__table__
    keys = [table.c[k] for k in model.KEY]
    total = func.sum(_count_column(model))
    return {
        tuple(row[:-1]): int(row[-1])
        for row in session.execute(select(*keys, total).group_by(*keys).having(total != 0))
    }


def compact_tallies(session: Session) -> int:
    """Fold each key's deltas into one row; return how many rows went. Commits.

    The rows deleted are exactly the rows summed (DELETE … RETURNING), so a writer or another
    compaction running meanwhile cannot make a count twice or lose one.
    """
    removed = 0
    for model in TALLIES:
        table = model.__table__
        count = _count_column(model)
        sums: dict[tuple[Any, ...], int] = {}
        gone = session.execute(
            delete(model)
            .returning(*[table.c[k] for k in model.KEY], count)
            .execution_options(synchronize_session=False)
        ).all()
        for *key, n in gone:
            sums[tuple(key)] = sums.get(tuple(key), 0) + n
        rows = [
            {**dict(zip(model.KEY, key, strict=True)), count.name: n}
            for key, n in sums.items()
            if n
        ]
        if rows:
            session.execute(insert(model), rows)
        removed += len(gone) - len(rows)
    session.commit()
    return removed
