"""Job runs: a row per run of a job, so people can see what ran, when, and how it ended."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, case, delete, func, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from compliance.logs import log_event
from compliance.ops.schedule import DAY, HOUR, MINUTE, WEEK, shipped_intervals
from compliance.store.models import JobRun, utcnow
from compliance.store.sql import aware_utc
from compliance.store.states import JobRunStatus

if TYPE_CHECKING:  # pandas costs ~80 MB; only the dashboard's reads need it
    import pandas as pd

HEALTH_COLUMNS = [
    "job",
    "expected_every",
    "last_success_at",
    "last_run_at",
    "last_status",
    "runs",
    "overdue",
    "health",
    "note",
]
NEVER_RUN = "never run yet: schedule it (deploy/crontab)"
HISTORY_COLUMNS = [
    "id",
    "job",
    "status",
    "dry_run",
    "started_at",
    "finished_at",
    "duration_s",
    "arguments",
    "summary",
    "error",
]


#: Arguments that name or describe a data subject: never stored, whatever they hold.
PERSONAL_ARGUMENTS = frozenset(
    {"email", "subject_email", "identity_check", "identity_note", "full_name", "phone"}
)
#: Staff who act (reviewers, requesters, hold owners): their address is accountability.
STAFF_ARGUMENTS = frozenset({"reviewer", "requested_by", "by", "actor"})
#: Text a person typed as a command's option (a reason, a note, an exclusion's note): it may
#: name the subject, and job runs outlive the subject's erasure. Summaries keep their
#: reasons: those are the desk's own words ("no ops_channel configured").
TYPED_TEXT_ARGUMENTS = frozenset({"reason", "note", "correction"})
REDACTED = "[redacted]"
_EMAIL = re.compile(r"[^\s@'\"<>(),;:\[\]]+@[^\s@'\"<>(),;:\[\]]+\.[A-Za-z]{2,}")


def redact_text(text: str) -> str:
    """Email addresses in free text (an error naming the subject's address) become [email]."""
    if "@" not in text:
        # No address without one; and the pattern's scan of a long value (a refused
        # 100,000-character argument) is quadratic: half a minute per value.
        return text
    return _EMAIL.sub("[email]", text)


def redact(value: Any, key: str | None = None) -> Any:
    """What job_runs may keep of a run's arguments or summary: no subject email, name or note.

    Job runs are shown to managers and kept for months; the subject's identity belongs in
    the DSAR request (scrubbed once erased), never in this operational log.
    """
    if key in PERSONAL_ARGUMENTS:
        return REDACTED if value not in (None, "", False, [], ()) else value
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, key) for v in value]
    if isinstance(value, str) and key not in STAFF_ARGUMENTS:
        return redact_text(value)
    return value


def redact_arguments(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """What job_runs keeps of a command's arguments: ``redact``, and no typed text at all
    (``--exclude 42:NOTE`` keeps the record id)."""
    kept: dict[str, Any] = {}
    for key, value in arguments.items():
        if key in TYPED_TEXT_ARGUMENTS and value not in (None, "", [], ()):
            kept[key] = REDACTED
        elif key == "exclude" and isinstance(value, list | tuple):
            kept[key] = [f"{str(v).partition(':')[0]}:{REDACTED}" for v in value]
        elif key == "correct" and isinstance(value, list | tuple):  # the column, not the value
            kept[key] = [f"{str(v).partition('=')[0].strip()[:100]}={REDACTED}" for v in value]
        else:
            kept[key] = redact(value, key)
    return kept


def purge_job_runs(session: Session, *, older_than: datetime, execute: bool) -> int:
    """Delete runs started before ``older_than``; return how many (would) go.

    Each job's newest real success is kept whatever its age, so the Jobs page still knows
    when a weekly or monthly job last worked.
    """
    real_success = and_(JobRun.status == JobRunStatus.SUCCEEDED, JobRun.dry_run.is_(False))
    newest_success = select(func.max(JobRun.id)).where(real_success).group_by(JobRun.job)
    old = and_(JobRun.started_at < older_than, JobRun.id.not_in(newest_success))
    if not execute:
        count = session.scalar(select(func.count()).select_from(JobRun).where(old)) or 0
        session.rollback()
        return count
    result: CursorResult[Any] = session.execute(delete(JobRun).where(old))  # type: ignore[assignment]
    session.commit()
    return result.rowcount or 0


def start_job_run(session: Session, job: str, arguments: dict[str, Any], *, dry_run: bool) -> int:
    run = JobRun(
        job=job, arguments=redact_arguments(arguments), dry_run=dry_run, started_at=utcnow()
    )
    session.add(run)
    session.commit()
    return run.id


def finish_job_run(
    session: Session, run_id: int, status: str, summary: Any, error: str | None
) -> None:
    session.execute(
        update(JobRun)
        .where(JobRun.id == run_id)
        .values(
            status=status,
            finished_at=utcnow(),
            summary=redact(summary) if isinstance(summary, dict) else None,
            error=redact_text(error)[:2000] if error else None,
        )
    )
    session.commit()


def close_stale_runs(
    session: Session, job: str, *, bucket: str | None, current_run_id: int
) -> list[int]:
    """Close as 'crashed' the earlier real runs of ``job`` still marked 'running'.

    Call it only while holding the job's lock (for ``bucket``, when the job runs per bucket):
    a real run holds that lock until it has recorded how it ended, so finding the lock free
    means those runs died (SIGKILL, OOM, a lost database) without saying so. They keep no
    finished_at: when they died is unknown. A run that is only now recording its end
    overwrites this with its own status, which is the truth.
    """
    candidates = session.execute(
        select(JobRun.id, JobRun.arguments).where(
            JobRun.job == job,
            JobRun.status == JobRunStatus.RUNNING,
            JobRun.dry_run.is_(False),
            JobRun.id < current_run_id,
        )
    ).all()
    stale = [
        run_id
        for run_id, arguments in candidates
        if ((arguments or {}).get("bucket") or None) == (bucket or None)
    ]
    if not stale:
        return []
    session.execute(
        update(JobRun)
        .where(JobRun.id.in_(stale), JobRun.status == JobRunStatus.RUNNING)
        .values(
            status=JobRunStatus.CRASHED,
            error=f"never finished: run {current_run_id} found its lock free "
            "(the process died or lost its database)",
        )
    )
    session.commit()
    for run_id in stale:
        log_event("job.stale_run_closed", logging.WARNING, job=job, run=run_id, by=current_run_id)
    return stale


def late_after(interval: timedelta) -> timedelta:
    """A quarter of the interval (at least an hour) of slack, so a cron run a bit late is fine."""
    return interval + max(interval / 4, timedelta(hours=1))


def _count(count: int, name: str) -> str:
    return f"{count} {name}" if count == 1 else f"{count} {name}s"


def _every(interval: timedelta | None) -> str:
    """ "15 minutes", "1 hour", "1 day", "1 week": in the largest unit that divides it."""
    if interval is None:
        return "by hand"
    for unit, name in ((WEEK, "week"), (DAY, "day"), (HOUR, "hour"), (MINUTE, "minute")):
        if interval % unit == timedelta(0):
            return _count(interval // unit, name)
    return f"{interval.total_seconds():g} seconds"


def _age(elapsed: timedelta) -> str:
    """Whole days, else whole hours, else minutes: "2 days", "3 hours", "40 minutes"."""
    if elapsed >= DAY:
        return _count(elapsed // DAY, "day")
    if elapsed >= HOUR:
        return _count(elapsed // HOUR, "hour")
    return _count(elapsed // MINUTE, "minute")


def _health(interval: timedelta | None, runs: int, overdue: bool) -> str:
    """One word for the table: overdue, by hand, never run or ok."""
    if overdue:
        return "overdue"
    if interval is None:
        return "by hand"
    return "never run" if runs == 0 else "ok"


def _run_totals(session: Session) -> dict[str, tuple[int, datetime | None]]:
    """Per job: how many runs, and when it last succeeded for real (not a dry run)."""
    real_success = and_(JobRun.status == JobRunStatus.SUCCEEDED, JobRun.dry_run.is_(False))
    success_at = func.coalesce(JobRun.finished_at, JobRun.started_at)
    totals = session.execute(
        select(
            JobRun.job,
            func.count().label("runs"),
            func.max(case((real_success, success_at))).label("last_success_at"),
        ).group_by(JobRun.job)
    ).all()
    return {
        job: (runs, aware_utc(success) if success is not None else None)
        for job, runs, success in totals
    }


def _last_runs(session: Session) -> dict[str, tuple[datetime, str]]:
    """Per job: when its latest run started, and its status."""
    latest = select(func.max(JobRun.id)).group_by(JobRun.job)
    return {
        job: (started_at, status)
        for job, started_at, status in session.execute(
            select(JobRun.job, JobRun.started_at, JobRun.status).where(JobRun.id.in_(latest))
        ).all()
    }


def _overdue(
    interval: timedelta | None, runs: int, last_success: datetime | None, now: datetime
) -> tuple[bool, str]:
    """Whether a scheduled job is overdue, and the note that says why (or why not)."""
    if interval is None:
        return False, ""
    if runs == 0:
        # A fresh install: nothing has failed, the schedule is simply not set up yet.
        return False, NEVER_RUN
    if last_success is None:
        return True, "never succeeded"
    if now - last_success > late_after(interval):
        return True, f"no success for {_age(now - last_success)}"
    return False, ""


def _health_row(
    job: str,
    interval: timedelta | None,
    totals: tuple[int, datetime | None],
    last_run: tuple[datetime | None, str | None],
    now: datetime,
) -> dict[str, Any]:
    (runs, last_success), (last_run_at, last_status) = totals, last_run
    overdue, note = _overdue(interval, runs, last_success, now)
    if (
        last_status == JobRunStatus.RUNNING
        and interval
        and last_run_at is not None
        and now - last_run_at > late_after(interval)
    ):
        note = (note + "; " if note else "") + "last run never finished (killed?)"
    return {
        "job": job,
        "expected_every": _every(interval),
        "last_success_at": last_success,
        "last_run_at": last_run_at,
        "last_status": last_status,
        "runs": runs,
        "overdue": overdue,
        "health": _health(interval, runs, overdue),
        "note": note,
    }


def job_health(
    session: Session,
    *,
    now: datetime | None = None,
    intervals: Mapping[str, timedelta] | None = None,
) -> pd.DataFrame:
    """Per job: when it last succeeded for real (not a dry run), and whether that is too long ago.

    A scheduled job is overdue when its last real success is older than its expected
    interval plus some slack, or when it ran but never succeeded. A job that never ran at
    all is "never run" (a fresh install), not an alarm. Intervals come from the shipped
    ``deploy/crontab``; a job it does not schedule runs by hand and is never overdue.
    """
    now = now or utcnow()
    intervals = shipped_intervals() if intervals is None else intervals
    totals = _run_totals(session)
    last_runs = _last_runs(session)
    rows = [
        _health_row(
            job,
            intervals.get(job),
            totals.get(job, (0, None)),
            last_runs.get(job, (None, None)),
            now,
        )
        for job in sorted(set(intervals) | set(totals))
    ]
    import pandas as pd

    return pd.DataFrame(rows, columns=HEALTH_COLUMNS)


def job_history(session: Session, *, job: str | None = None, limit: int = 100) -> pd.DataFrame:
    """The latest runs, newest first: what ran, with which arguments, and how it ended."""
    query = select(JobRun).order_by(JobRun.id.desc()).limit(limit)
    if job:
        query = query.where(JobRun.job == job)
    rows = []
    for run in session.scalars(query):
        duration = (run.finished_at - run.started_at).total_seconds() if run.finished_at else None
        rows.append(
            {
                "id": run.id,
                "job": run.job,
                "status": run.status,
                "dry_run": run.dry_run,
                "started_at": run.started_at,
                "finished_at": run.finished_at,
                "duration_s": duration,
                "arguments": json.dumps(run.arguments or {}, sort_keys=True),
                "summary": json.dumps(run.summary, sort_keys=True) if run.summary else "",
                "error": run.error or "",
            }
        )
    import pandas as pd

    return pd.DataFrame(rows, columns=HISTORY_COLUMNS)
