"""Versions of what the desk's pages show, kept by the database and read on every run.

A page caches its reads for speed under the version it read them at; a write by anyone, in
any process, changes the version, so the next run reads afresh instead of showing a stale
list (and a link never falls back to one). Each version is a few index lookups.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from compliance.store.models import AuditEvent, DeletionBatch, DsarRequest
from compliance.store.tallies import DeletionTally
from compliance.systems.backlog import tasks_version


def batches_version(session: Session) -> str:
    """Changes whenever anyone, in any process, writes what the batch pages show.

    Every change the desk and the jobs make is audited in its own transaction (the audit
    trail's newest id), the database's triggers append a tally row with every record state
    change (even an operator's SQL), and a batch made, decided or purged changes the
    batches' count or newest ``updated_at``. One statement of index lookups and a count of
    the (small) batches table: cheap enough to read on every page run.
    """
    row = session.execute(
        select(
            select(func.max(AuditEvent.id)).scalar_subquery(),
            select(func.max(DeletionTally.id)).scalar_subquery(),
            select(func.count()).select_from(DeletionBatch).scalar_subquery(),
            select(func.max(DeletionBatch.updated_at)).scalar_subquery(),
        )
    ).one()
    return ":".join("" if v is None else str(v) for v in row)


def requests_version(session: Session) -> str:
    """Changes whenever anyone, in any process, writes what the DSAR pages show.

    The database numbers every insert and update of a request (``last_change``, migration
    0019: a job claiming a request, an operator's SQL); a purge changes the count; a task's
    status change appends a task tally; notes, notices and deliveries are audited. Index
    lookups only, read on every page run.
    """
    row = session.execute(
        select(
            select(func.max(DsarRequest.last_change)).scalar_subquery(),
            select(func.count()).select_from(DsarRequest).scalar_subquery(),
            select(func.max(AuditEvent.id)).scalar_subquery(),
        )
    ).one()
    return ":".join("" if v is None else str(v) for v in row) + ":" + tasks_version(session)
