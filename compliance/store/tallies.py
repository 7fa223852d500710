"""Counts the database keeps as rows change, for figures that would otherwise scan everything.

Triggers (migration 0009) append signed deltas with every write to deletion_records and
erasure_tasks, whoever makes it; a count is the sum of its key's rows. Nothing is updated
in place, so writers never wait on each other here; jobs fold the deltas when they finish.
"""

from __future__ import annotations

from datetime import date
from typing import Any, ClassVar

from sqlalchemy import Date, Integer, String, delete, func, insert, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from compliance.store.models import Base, BigId


class DeletionTally(Base):
    """Signed counts of deletion records per bucket, state and week, appended by triggers.

    Migration 0009 keeps them with every write to deletion_records, whoever makes it, so
    Progress sums a few rows instead of counting every record (compliance.store.tallies).
    The week is that of what last happened to the record.
    """

    __tablename__ = "deletion_record_tallies"
    KEY: ClassVar[tuple[str, ...]] = ("bucket", "state", "week")
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    bucket: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(20))
    week: Mapped[date] = mapped_column(Date)
    records: Mapped[int] = mapped_column(Integer)


class TaskTally(Base):
    """Signed counts of erasure tasks per system and status, appended by triggers (0009)."""

    __tablename__ = "erasure_task_tallies"
    KEY: ClassVar[tuple[str, ...]] = ("system", "status")
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    system: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20))
    tasks: Mapped[int] = mapped_column(Integer)


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
