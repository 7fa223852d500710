"""Where every system stands: the per-system backlog managers and officers watch.

A request is done only when every system it reaches says so, so a manual step nobody
confirms or a webhook that keeps failing holds erasures back; this is where that shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from compliance.store.models import ErasureTask, utcnow
from compliance.store.sql import aware_utc
from compliance.store.states import TaskStatus
from compliance.store.tallies import TaskTally, tally_sums

#: Statuses still waiting on the system or a person; the oldest of them dates the backlog.
WAITING = (TaskStatus.PENDING, TaskStatus.SENT)
BACKLOG_COLUMNS = [
    "system",
    "kind",
    "waiting",
    TaskStatus.FAILED.value,
    TaskStatus.DONE.value,
    TaskStatus.SKIPPED.value,
    "oldest_waiting_days",
]


def tasks_version(session: Session) -> str:
    """Changes whenever any task is made or changes status, in any process (the triggers
    append a task tally row): all the backlog reads. The count as well as the newest id,
    because folding the tallies together (SQLite reuses freed ids) may bring back an id."""
    newest, rows = session.execute(select(func.max(TaskTally.id), func.count())).one()
    return f"{newest or 0}:{rows}"


def system_backlog(
    session: Session, kinds: Mapping[str, str], *, now: datetime | None = None
) -> pd.DataFrame:
    """One row per system that has tasks: what waits, what failed, what is done.

    ``kinds`` maps a system's name to its kind as the policy declares it; a system that
    has tasks but is no longer in the policy still shows, with kind "?".
    """
    now = aware_utc(now or utcnow())
    counts: dict[str, dict[str, int]] = {}
    oldest: dict[str, datetime] = {}
    # Counts kept by triggers (compliance.store.tallies): no scan of every task ever made.
    for (system, status), count in tally_sums(session, TaskTally).items():
        mine = counts.setdefault(system, {})
        key = "waiting" if status in WAITING else str(status)
        mine[key] = mine.get(key, 0) + count
    # Only the waiting tasks are read here, through the status index.
    for system, first in session.execute(
        select(ErasureTask.system, func.min(ErasureTask.created_at))
        .where(ErasureTask.status.in_(WAITING))
        .group_by(ErasureTask.system)
    ):
        oldest[system] = aware_utc(first)
    rows: list[dict[str, object]] = [
        {"system": name, "kind": kinds.get(name, "?")}
        | {column: counts[name].get(column, 0) for column in BACKLOG_COLUMNS[2:-1]}
        | {"oldest_waiting_days": (now - oldest[name]).days if name in oldest else None}
        for name in sorted(counts)
    ]
    return pd.DataFrame(rows, columns=BACKLOG_COLUMNS).astype({"oldest_waiting_days": "Int64"})
