"""Retention cleanup: row-level TTL for operational data, by the policy's ``[retention.*]``.

No review: rows older than an entry's ``days`` are deleted in chunks (each chunk its own
application transaction, so locks stay short and a killed run resumes where it stopped).
A ``retain`` table is never touched. A table or column the application database lacks is
a warning and that entry is skipped, so one stale entry never stops the others. In a table
the data map links to subjects, by ``subject_column`` or through ``via`` parents alike, rows
of subjects under a hold (``holds.held_subjects``, the check every erasing path shares), or
with an open access request (the export is evidence), are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, MetaData, Table, delete, false, func, inspect, select, tuple_
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from compliance.audit.chain import record_event
from compliance.deletion.holds import awaiting_access_export, held_subjects
from compliance.errors import ConfigError, NotFound, first_line
from compliance.logs import Progress, log_event
from compliance.ops.jobruns import purge_job_runs
from compliance.policy.datamap import DataMap
from compliance.policy.model import Policy, RetentionEntry
from compliance.store.models import utcnow
from compliance.store.states import CleanupStatus

DEFAULT_CHUNK_SIZE = 5000
#: The retention category of this tool's own job_runs (compliance database).
JOB_RUNS = "job_runs"


@dataclass
class CategoryResult:
    """One ``[retention.NAME]`` entry: ``deleted`` | ``would delete`` | ``skipped`` | ``failed``."""

    name: str
    table: str
    timestamp: str
    days: int
    cutoff: datetime
    status: str
    rows: int = 0
    message: str | None = None
    #: Old rows left in place because their subject is protected: a legal hold, or an open
    #: access request whose export is not built yet.
    protected_rows: int = 0


@dataclass
class RetentionResult:
    categories: list[CategoryResult] = field(default_factory=list)
    executed: bool = False

    @property
    def rows(self) -> int:
        return sum(c.rows for c in self.categories)

    @property
    def skipped(self) -> list[CategoryResult]:
        return [c for c in self.categories if c.status == CleanupStatus.SKIPPED]

    @property
    def failed(self) -> list[CategoryResult]:
        return [c for c in self.categories if c.status == CleanupStatus.FAILED]


def _missing(engine: Engine, entry: RetentionEntry) -> str | None:
    inspector = inspect(engine)
    if not inspector.has_table(entry.table):
        return f"retention.{entry.name}.table: no table '{entry.table}'; entry skipped"
    if entry.timestamp not in {c["name"] for c in inspector.get_columns(entry.table)}:
        return (
            f"retention.{entry.name}.timestamp: table '{entry.table}' has no column "
            f"'{entry.timestamp}'; entry skipped"
        )
    return None


def _cutoff(table: Table, entry: RetentionEntry, now: datetime) -> datetime:
    cutoff = now - timedelta(days=entry.days)
    if getattr(table.c[entry.timestamp].type, "timezone", False):
        return cutoff.astimezone(UTC)
    # Application timestamps without a zone are taken to be UTC (as bucket rules do).
    return cutoff.astimezone(UTC).replace(tzinfo=None)


def _delete_chunks(
    engine: Engine, table: Table, old: Any, chunk_size: int, progress: Progress
) -> int:
    """Delete the old rows a chunk at a time, by primary key, each chunk committed on its own."""
    pk = list(table.primary_key.columns)
    if not pk:
        # Nothing to chunk by: one statement, still set-based.
        with engine.begin() as conn:
            deleted = conn.execute(delete(table).where(old)).rowcount
        progress.advance(deleted)
        return deleted
    key = pk[0] if len(pk) == 1 else tuple_(*pk)
    deleted = 0
    while True:
        chunk = select(*pk).where(old).limit(chunk_size)
        with engine.begin() as conn:
            n = conn.execute(delete(table).where(key.in_(chunk))).rowcount
        deleted += n
        progress.advance(n)
        if n < chunk_size:
            return deleted


def _coerce(column: Any, keys: set[str]) -> list[Any]:
    """Subject keys (text in the compliance database) as the column's type."""
    try:
        if column.type.python_type is int:
            return [int(k) for k in keys if k.lstrip("-").isdigit()]
    except NotImplementedError:
        pass
    return sorted(keys)


@dataclass
class CategoryPlan:
    """What one category would delete: the expired rows of ``table`` matching ``old``."""

    entry: RetentionEntry
    outcome: CategoryResult
    #: None when the category is skipped (its table or column is missing).
    table: Table | None = None
    #: Expired and not protected: the clause the dry run counts and the execution deletes.
    old: Any = None


@dataclass
class RetentionPlan:
    """Every category a run covers, planned before anything is deleted."""

    categories: list[CategoryPlan] = field(default_factory=list)
    #: When this tool's own job_runs are covered too ([retention.job_runs]).
    job_runs: bool = False
    now: datetime = field(default_factory=utcnow)


def _entries(policy: Policy, category: str | None) -> list[RetentionEntry]:
    """The [retention.NAME] entries a run covers: all of them, one, or none (job_runs only)."""
    if category is None:
        return list(policy.retention.values())
    if category == JOB_RUNS:
        return []
    if category not in policy.retention:
        known = ", ".join(sorted([*policy.retention, JOB_RUNS]))
        raise NotFound(f"unknown retention category '{category}' (known: {known})")
    return [policy.retention[category]]


def _plan_category(
    datamap: DataMap, entry: RetentionEntry, protected: set[str], now: datetime
) -> CategoryPlan:
    policy, app_engine = datamap.policy, datamap.engine
    if entry.table in policy.retained_tables:
        # load_policy refuses this already; a hand-built Policy must not slip through.
        raise ConfigError(
            f"retention.{entry.name}.table: '{entry.table}' is a retain table "
            "and can never be cleaned up"
        )
    basics = (entry.name, entry.table, entry.timestamp, entry.days)
    problem = _missing(app_engine, entry)
    if problem:
        log_event("retention.skipped", category=entry.name, reason=problem)
        return CategoryPlan(entry, CategoryResult(*basics, now, CleanupStatus.SKIPPED, 0, problem))
    mapped = entry.table in policy.tables
    # A mapped table is the data map's own, so its link to the subject joins the same table.
    table = (
        datamap.table(entry.table)
        if mapped
        else Table(entry.table, MetaData(), autoload_with=app_engine)
    )
    cutoff = _cutoff(table, entry, now)
    old = table.c[entry.timestamp] < cutoff  # a NULL timestamp is never old
    outcome = CategoryResult(*basics, cutoff, CleanupStatus.WOULD_DELETE)
    if protected and mapped:
        # By subject_column or up the via chain: the same link erasure uses. A row whose
        # link is NULL belongs to nobody held, so it is not kept.
        keys = _coerce(datamap.subject_column(entry.table), protected)
        kept = func.coalesce(datamap.condition(entry.table, keys), false())
        with app_engine.connect() as conn:
            outcome.protected_rows = (
                conn.scalar(select(func.count()).select_from(table).where(old, kept)) or 0
            )
        old = old & ~kept
    return CategoryPlan(entry, outcome, table, old)


def plan_retention_cleanup(
    session: Session,
    policy: Policy,
    app_engine: Engine,
    *,
    category: str | None = None,
    now: datetime | None = None,
    datamap: DataMap | None = None,
) -> RetentionPlan:
    """Each category's expired rows, as the clause that deletes them; nothing is counted yet.

    ``datamap`` is the policy's data map on ``app_engine`` (made here when not given).
    """
    now = now or utcnow()
    entries = _entries(policy, category)
    # Held subjects keep their rows; so do subjects whose access export is not built yet.
    protected = held_subjects(session, now=now) | awaiting_access_export(session)
    session.rollback()
    if not entries:
        return RetentionPlan([], job_runs=category in (None, JOB_RUNS), now=now)
    own = datamap is None
    datamap = datamap or DataMap(policy, app_engine)
    try:
        categories = [_plan_category(datamap, entry, protected, now) for entry in entries]
    finally:
        if own:
            datamap.dispose()
    return RetentionPlan(categories, job_runs=category in (None, JOB_RUNS), now=now)


def _count(app_engine: Engine, planned: CategoryPlan) -> None:
    """The dry run: how many rows the plan would delete."""
    assert planned.table is not None
    with app_engine.connect() as conn:
        rows = conn.scalar(select(func.count()).select_from(planned.table).where(planned.old))
    planned.outcome.rows = rows or 0


def _delete(
    session: Session, app_engine: Engine, planned: CategoryPlan, *, actor: str, chunk_size: int
) -> None:
    """Delete what the plan names, in chunks; one audit event for the category, how it ended."""
    entry, outcome, table = planned.entry, planned.outcome, planned.table
    assert table is not None
    progress = Progress("retention.progress", category=entry.name, table=entry.table)
    try:
        outcome.rows = _delete_chunks(app_engine, table, planned.old, chunk_size, progress)
        outcome.status = CleanupStatus.DELETED
    except SQLAlchemyError as exc:
        outcome.rows = progress.done
        outcome.status, outcome.message = CleanupStatus.FAILED, first_line(exc)
        log_event("retention.failed", category=entry.name, error=outcome.message)
    progress.log(status=outcome.status)
    details: dict[str, Any] = {
        "table": entry.table,
        "timestamp": entry.timestamp,
        "days": entry.days,
        "cutoff": outcome.cutoff.isoformat(),
        "rows_deleted": outcome.rows,
        "rows_protected": outcome.protected_rows,
    }
    if outcome.message:
        details["error"] = outcome.message
    record_event(
        session,
        actor=actor,
        action="retention.cleaned_up",
        target_type="retention_category",
        target_id=entry.name,
        details=details,
    )
    session.commit()


def carry_out_retention_plan(
    session: Session,
    policy: Policy,
    app_engine: Engine,
    plan: RetentionPlan,
    *,
    actor: str,
    execute: bool,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> RetentionResult:
    """Count (dry run) or delete what ``plan`` names; one audit event per category deleted."""
    if chunk_size < 1:
        raise ConfigError(f"chunk size must be 1 or more, got {chunk_size}")
    result = RetentionResult(executed=execute)
    for planned in plan.categories:
        result.categories.append(planned.outcome)
        if planned.table is None:
            continue
        if execute:
            _delete(session, app_engine, planned, actor=actor, chunk_size=chunk_size)
        else:
            _count(app_engine, planned)
    if plan.job_runs:
        result.categories.append(_purge_job_runs(session, policy, actor, plan.now, execute=execute))
    return result


def retention_cleanup(
    session: Session,
    policy: Policy,
    app_engine: Engine,
    *,
    actor: str,
    execute: bool,
    category: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    now: datetime | None = None,
    datamap: DataMap | None = None,
) -> RetentionResult:
    """Plan, then count (dry run) or delete each category's expired rows."""
    if chunk_size < 1:
        raise ConfigError(f"chunk size must be 1 or more, got {chunk_size}")
    plan = plan_retention_cleanup(
        session, policy, app_engine, category=category, now=now, datamap=datamap
    )
    return carry_out_retention_plan(
        session, policy, app_engine, plan, actor=actor, execute=execute, chunk_size=chunk_size
    )


def _purge_job_runs(
    session: Session, policy: Policy, actor: str, now: datetime, *, execute: bool
) -> CategoryResult:
    """This tool's own job_runs, kept ``[retention.job_runs] days`` (DEFAULT_JOB_RUNS_DAYS)."""
    days = policy.job_runs_days
    cutoff = now - timedelta(days=days)
    rows = purge_job_runs(session, older_than=cutoff, execute=execute)
    status = CleanupStatus.DELETED if execute else CleanupStatus.WOULD_DELETE
    outcome = CategoryResult(JOB_RUNS, "job_runs", "started_at", days, cutoff, status)
    outcome.rows = rows
    if execute and rows:  # like export cleanup: an event when something was removed
        record_event(
            session,
            actor=actor,
            action="retention.cleaned_up",
            target_type="retention_category",
            target_id=JOB_RUNS,
            details={"table": "job_runs", "days": days, "cutoff": cutoff.isoformat(),
                     "rows_deleted": rows},
        )  # fmt: skip
        session.commit()
    return outcome
