"""Job runs: a row per run of a job, so people can see what ran, when, and how it ended."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from compliance.models import JobRun, utcnow


def start_job_run(session: Session, job: str, arguments: dict[str, Any], *, dry_run: bool) -> int:
    run = JobRun(job=job, arguments=arguments, dry_run=dry_run, started_at=utcnow())
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
            summary=summary if isinstance(summary, dict) else None,
            error=error[:2000] if error else None,
        )
    )
    session.commit()
