"""Deletion records: one open decision per (subject, bucket), found by the bucket's rules."""

from __future__ import annotations

import io
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Engine,
    column,
    delete,
    exists,
    false,
    func,
    literal,
    select,
    table,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from compliance.audit.chain import record_event
from compliance.deletion.holds import active_hold, held_subjects
from compliance.deletion.ledger import cooling_off, cooling_off_condition
from compliance.deletion.rules import due_query, iter_due_subjects
from compliance.errors import InvalidInput
from compliance.logs import Progress, log_event
from compliance.policy.datamap import DataMap
from compliance.policy.loader import Bucket
from compliance.store.models import (
    ComplianceProfile,
    DecisionLedger,
    DeletionRecord,
    LegalHold,
    UTCDateTime,
    utcnow,
)
from compliance.store.queries import record_open
from compliance.store.sql import rows_changed

# The columns an INSERT ... SELECT of new deletion records fills, in its SELECT's order.
RECORD_COLUMNS = [
    "compliance_profile_id",
    "bucket",
    "deletion_scheduled_at",
    "accepted_for_deletion",
    "is_manually_reviewed",
    "created_at",
    "updated_at",
]
# Keeps every IN list under SQLite's limit of 32,766 bound values per statement.
MAX_CHUNK_SIZE = 10_000
# PostgreSQL stages the due keys in a temporary table and opens records from it, so a commit
# may cover many more subjects: fewer, larger commits, each still kept if the run is killed.
STAGED_CHUNK_SIZE = 50_000
MAX_STAGED_CHUNK_SIZE = 500_000


@dataclass(frozen=True)
class CreateRecordsResult:
    bucket: str
    due: int
    created: int
    skipped: int
    profiles_created: int
    elapsed_s: float
    executed: bool
    #: Due subjects left out because a legal hold is in force on them.
    held: int = 0
    #: Due subjects left out because their record in this bucket was rejected recently.
    cooling_off: int = 0
    cooloff_days: int = 0


def _insert_for(session: Session) -> Any:
    """The dialect's INSERT, for ON CONFLICT DO NOTHING (SQLite and PostgreSQL share the syntax)."""
    if session.get_bind().dialect.name == "postgresql":
        return pg_insert
    return sqlite_insert


def insert_missing_profiles(session: Session, subject_ids: list[str], now: datetime) -> int:
    """Create the profiles these subjects lack, in one statement; return how many."""
    profiles = ComplianceProfile.__table__
    return len(
        session.execute(
            _insert_for(session)(profiles)
            .on_conflict_do_nothing(index_elements=["subject_id"])
            .returning(profiles.c.id),
            [{"subject_id": s, "created_at": now, "updated_at": now} for s in subject_ids],
        ).all()
    )


def ensure_profiles(
    session: Session, subject_ids: list[str], now: datetime
) -> tuple[dict[str, int], int]:
    """Profile ids for the subjects, creating the missing ones."""
    created = insert_missing_profiles(session, subject_ids, now)
    found = dict(
        session.execute(
            select(ComplianceProfile.subject_id, ComplianceProfile.id).where(
                ComplianceProfile.subject_id.in_(subject_ids)
            )
        ).all()
    )
    return found, created


def _open_record(bucket: str) -> Any:
    return exists().where(
        DeletionRecord.compliance_profile_id == ComplianceProfile.id,
        DeletionRecord.bucket == bucket,
        record_open,
    )


def _count_open(session: Session, bucket: str, subject_ids: list[str]) -> int:
    return (
        session.scalar(
            select(func.count()).where(
                ComplianceProfile.subject_id.in_(subject_ids), _open_record(bucket)
            )
        )
        or 0
    )


def add_records(
    session: Session,
    bucket: str,
    subject_ids: list[str],
    *,
    actor: str,
    scheduled_at: datetime,
    now: datetime,
    accepted: bool | None = None,
) -> tuple[int, int, int]:
    """Create the open records missing for these subjects; return (created, skipped, profiles).

    Set-based whatever the chunk size: one statement on PostgreSQL, two on SQLite (the
    missing profiles, then one record per profile). The partial unique index on open
    records skips subjects that have one, so there is no anti-join for the planner to
    misjudge on a table that grew since its last ANALYZE.
    """
    if not subject_ids:
        return 0, 0, 0
    if session.get_bind().dialect.name == "postgresql":
        created, new_profiles, first, last = _add_records_in_one_statement(
            session, bucket, subject_ids, scheduled_at=scheduled_at, now=now, accepted=accepted
        )
        profile_ids = [first, last] if created else []
    else:
        new_profiles, profile_ids, created = _add_records_in_two_statements(
            session, bucket, subject_ids, scheduled_at=scheduled_at, now=now, accepted=accepted
        )
    if created:
        record_event(
            session,
            actor=actor,
            action="deletion_records.created",
            target_type="bucket",
            target_id=bucket,
            details={
                "created": created,
                "skipped": len(subject_ids) - created,
                "profile_ids": [min(profile_ids), max(profile_ids)],
            },
        )
    return created, len(subject_ids) - created, new_profiles


# PostgreSQL: profiles and records in one round trip. ``existing`` reads the snapshot from
# before ``fresh`` inserted, so together they name every subject's profile exactly once.
_ADD_RECORDS_SQL = text("""
WITH fresh AS (
    INSERT INTO compliance_profiles (subject_id, created_at, updated_at)
    SELECT key, :now, :now FROM unnest(CAST(:keys AS text[])) AS key
    ON CONFLICT (subject_id) DO NOTHING
    RETURNING id
), existing AS (
    SELECT id FROM compliance_profiles WHERE subject_id = ANY(CAST(:keys AS text[]))
), opened AS (
    INSERT INTO deletion_records (compliance_profile_id, bucket, deletion_scheduled_at,
        accepted_for_deletion, is_manually_reviewed, created_at, updated_at)
    SELECT id, :bucket, :scheduled_at, :accepted_for_deletion, false, :now, :now
    FROM (SELECT id FROM fresh UNION ALL SELECT id FROM existing) AS profiles
    ON CONFLICT (compliance_profile_id, bucket) WHERE deletion_applied_at IS NULL DO NOTHING
    RETURNING compliance_profile_id
)
SELECT (SELECT count(*) FROM fresh), count(*), min(compliance_profile_id),
       max(compliance_profile_id)
FROM opened
""")


def _add_records_in_one_statement(
    session: Session,
    bucket: str,
    subject_ids: list[str],
    *,
    scheduled_at: datetime,
    now: datetime,
    accepted: bool | None,
) -> tuple[int, int, int, int]:
    """(records created, profiles created, lowest and highest profile id given a record)."""
    naive = UTCDateTime().process_bind_param
    new_profiles, created, first, last = session.execute(
        _ADD_RECORDS_SQL,
        {
            "keys": subject_ids,
            "bucket": bucket,
            "accepted_for_deletion": accepted,
            "scheduled_at": naive(scheduled_at, None),
            "now": naive(now, None),
        },
    ).one()
    return created, new_profiles, first, last


def _add_records_in_two_statements(
    session: Session,
    bucket: str,
    subject_ids: list[str],
    *,
    scheduled_at: datetime,
    now: datetime,
    accepted: bool | None,
) -> tuple[int, list[int], int]:
    """(profiles created, profile ids given a record, records created)."""
    new_profiles = insert_missing_profiles(session, subject_ids, now)
    fresh = select(
        ComplianceProfile.id,
        literal(bucket),
        literal(scheduled_at, UTCDateTime()),
        literal(accepted, Boolean()),
        literal(False),
        literal(now, UTCDateTime()),
        literal(now, UTCDateTime()),
    )
    profile_ids = session.scalars(
        _insert_for(session)(DeletionRecord.__table__)
        .from_select(
            RECORD_COLUMNS,
            fresh.where(ComplianceProfile.subject_id.in_(subject_ids)),
        )
        .on_conflict_do_nothing(
            index_elements=["compliance_profile_id", "bucket"],
            index_where=record_open,
        )
        .returning(DeletionRecord.__table__.c.compliance_profile_id)
    ).all()
    return new_profiles, list(profile_ids), len(profile_ids)


def create_deletion_records(
    session: Session,
    datamap: DataMap,
    bucket_name: str,
    *,
    actor: str,
    execute: bool,
    chunk_size: int | None = None,
    now: datetime | None = None,
) -> CreateRecordsResult:
    """Find the bucket's due subjects and open one record each; chunk by chunk, each committed.

    A run killed halfway keeps the chunks it committed; the rerun skips them as already open.
    ``chunk_size`` is subjects per commit: by default 50,000 when the compliance database is
    PostgreSQL (keys staged in a temporary table), else 5,000.
    """
    postgresql = session.get_bind().dialect.name == "postgresql"
    limit = MAX_STAGED_CHUNK_SIZE if postgresql else MAX_CHUNK_SIZE
    if chunk_size is None:
        chunk_size = STAGED_CHUNK_SIZE if postgresql else 5000
    if not 1 <= chunk_size <= limit:
        raise InvalidInput(
            f"{{field}} must be from 1 to {limit}, got {chunk_size}", field="chunk_size"
        )
    bucket = datamap.policy.bucket(bucket_name)
    if not bucket.rules:
        raise InvalidInput(
            f"bucket '{bucket.name}' has no rules: its records come from erasure requests "
            "(process-dsar-requests)"
        )
    now = now or utcnow()
    scheduled_at = now + timedelta(days=bucket.grace_days)
    if execute and same_database(datamap):
        return _create_in_database(
            session, datamap, bucket, actor=actor, scheduled_at=scheduled_at, now=now
        )
    if execute and postgresql:
        return _create_from_staged_keys(
            session, datamap, bucket, actor=actor, scheduled_at=scheduled_at, now=now,
            chunk_size=chunk_size,
        )  # fmt: skip
    progress = Progress("deletion_records.progress", bucket=bucket.name)
    due = created = skipped = profiles = held = cooled = 0
    for found in iter_due_subjects(datamap, bucket, now, chunk=chunk_size):
        due += len(found)
        # A legal hold wins over every rule; a recent rejection is not proposed again.
        on_hold = held_subjects(session, found, now=now)
        rest = [s for s in found if s not in on_hold]
        recent = cooling_off(session, bucket.name, bucket.rejection_cooloff_days, rest, now=now)
        chunk = [s for s in rest if s not in recent]
        held += len(on_hold)
        cooled += len(recent)
        if not chunk:
            session.rollback()
            progress.advance(len(found), created=created, skipped=skipped)
            continue
        if execute:
            c, s, p = add_records(
                session, bucket.name, chunk, actor=actor, scheduled_at=scheduled_at, now=now
            )
            session.commit()
        else:
            s = _count_open(session, bucket.name, chunk)
            c, p = len(chunk) - s, 0
            session.rollback()
        created += c
        skipped += s
        profiles += p
        progress.advance(len(found), created=created, skipped=skipped)
    if held or cooled:
        log_event("deletion_records.held_back", bucket=bucket.name, held=held, cooling_off=cooled)
    return CreateRecordsResult(
        bucket=bucket.name,
        due=due,
        created=created,
        skipped=skipped,
        profiles_created=profiles,
        elapsed_s=round(progress.elapsed, 3),
        executed=execute,
        held=held,
        cooling_off=cooled,
        cooloff_days=bucket.rejection_cooloff_days,
    )


# The same work as _ADD_RECORDS_SQL, for the staged keys numbered ``lo < n <= hi``.
_ADD_STAGED_RECORDS_SQL = text("""
WITH staged AS (
    SELECT key FROM pd_due_keys WHERE n > :lo AND n <= :hi
), fresh AS (
    INSERT INTO compliance_profiles (subject_id, created_at, updated_at)
    SELECT key, :now, :now FROM staged
    ON CONFLICT (subject_id) DO NOTHING
    RETURNING id
), existing AS (
    SELECT p.id FROM compliance_profiles AS p JOIN staged ON p.subject_id = staged.key
), opened AS (
    INSERT INTO deletion_records (compliance_profile_id, bucket, deletion_scheduled_at,
        accepted_for_deletion, is_manually_reviewed, created_at, updated_at)
    SELECT id, :bucket, :scheduled_at, :accepted_for_deletion, false, :now, :now
    FROM (SELECT id FROM fresh UNION ALL SELECT id FROM existing) AS profiles
    ON CONFLICT (compliance_profile_id, bucket) WHERE deletion_applied_at IS NULL DO NOTHING
    RETURNING compliance_profile_id
)
SELECT (SELECT count(*) FROM staged), (SELECT count(*) FROM fresh), count(*),
       min(compliance_profile_id), max(compliance_profile_id)
FROM opened
""")


def _copy_line(key: str) -> str:
    """One key in COPY's text format (backslash, tab and line ends escaped)."""
    escaped = key.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
    return escaped.replace("\r", "\\r") + "\n"


def _create_from_staged_keys(
    session: Session,
    datamap: DataMap,
    bucket: Bucket,
    *,
    actor: str,
    scheduled_at: datetime,
    now: datetime,
    chunk_size: int,
) -> CreateRecordsResult:
    """PostgreSQL: COPY the due keys into a temporary table, then open records from it.

    The keys cross from the application database once, as a COPY stream (no key becomes a
    bound value), and each commit opens up to ``chunk_size`` subjects' records by a join on
    the server. A run killed halfway keeps the commits it made; the temporary table dies
    with its connection, and the rerun stages the keys again and skips what is open.
    """
    progress = Progress("deletion_records.progress", bucket=bucket.name)
    naive = UTCDateTime().process_bind_param
    due = created = profiles = 0
    engine = session.get_bind()
    assert isinstance(engine, Engine), "a job session is bound to an engine"
    with engine.connect() as conn, Session(bind=conn) as staging:
        staging.execute(
            text(
                "CREATE TEMPORARY TABLE IF NOT EXISTS pd_due_keys "
                "(n bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, key text NOT NULL)"
            )
        )
        staging.execute(text("TRUNCATE pd_due_keys RESTART IDENTITY"))
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            for chunk in iter_due_subjects(datamap, bucket, now, chunk=min(chunk_size, 10_000)):
                lines = io.StringIO("".join(_copy_line(str(k)) for k in chunk))
                cursor.copy_expert("COPY pd_due_keys (key) FROM STDIN", lines)
                due += len(chunk)
        finally:
            cursor.close()
        held, cooled = _hold_back_staged(staging, bucket, now)
        staging.commit()
        log_event("deletion_records.staged", logging.DEBUG, bucket=bucket.name, due=due)
        for lo in range(0, due, chunk_size):
            in_part, new_profiles, opened, first, last = staging.execute(
                _ADD_STAGED_RECORDS_SQL,
                {
                    "lo": lo,
                    "hi": lo + chunk_size,
                    "bucket": bucket.name,
                    "accepted_for_deletion": None,
                    "scheduled_at": naive(scheduled_at, None),
                    "now": naive(now, None),
                },
            ).one()
            if opened:
                record_event(
                    staging,
                    actor=actor,
                    action="deletion_records.created",
                    target_type="bucket",
                    target_id=bucket.name,
                    details={
                        "created": opened,
                        "skipped": in_part - opened,
                        "profile_ids": [first, last],
                    },
                )
            staging.commit()
            created += opened
            profiles += new_profiles
            progress.advance(min(chunk_size, due - lo), created=created)
        staging.execute(text("DROP TABLE pd_due_keys"))
        staging.commit()
    if held or cooled:
        log_event("deletion_records.held_back", bucket=bucket.name, held=held, cooling_off=cooled)
    return CreateRecordsResult(
        bucket=bucket.name,
        due=due,
        created=created,
        skipped=due - held - cooled - created,
        profiles_created=profiles,
        elapsed_s=round(progress.elapsed, 3),
        executed=True,
        held=held,
        cooling_off=cooled,
        cooloff_days=bucket.rejection_cooloff_days,
    )


def _hold_back_staged(session: Session, bucket: Bucket, now: datetime) -> tuple[int, int]:
    """Drop from the staged keys the subjects on legal hold or rejected recently.

    A legal hold wins over every rule; a recent rejection is not proposed again. Returns
    (held, cooling off), counted as the chunked path counts them.
    """
    staged = table("pd_due_keys", column("key"))
    on_hold = exists().where(
        ComplianceProfile.subject_id == staged.c.key,
        LegalHold.compliance_profile_id == ComplianceProfile.id,
        active_hold(now),
    )
    held = rows_changed(session.execute(delete(staged).where(on_hold)))
    if bucket.rejection_cooloff_days <= 0:
        return held, 0
    since = now - timedelta(days=bucket.rejection_cooloff_days)
    recent = exists().where(
        ComplianceProfile.subject_id == staged.c.key,
        DecisionLedger.compliance_profile_id == ComplianceProfile.id,
        cooling_off_condition(bucket.name, since),
    )
    return held, rows_changed(session.execute(delete(staged).where(recent)))


def same_database(datamap: DataMap) -> bool:
    """Both URLs name one database: the rules can feed the compliance tables directly."""
    policy = datamap.policy
    return policy.database_url == policy.app_database_url


def _create_in_database(
    session: Session,
    datamap: DataMap,
    bucket: Bucket,
    *,
    actor: str,
    scheduled_at: datetime,
    now: datetime,
) -> CreateRecordsResult:
    """Profiles and records straight from the rules, in one transaction, no key leaving the server.

    All or nothing: a run killed halfway commits nothing and the rerun does the whole work.
    (``WHERE true``: SQLite needs a WHERE before an upsert clause to parse INSERT ... SELECT.)
    """
    started = time.monotonic()
    found = due_query(datamap, bucket, now).subquery("found")
    total = session.scalar(select(func.count()).select_from(found)) or 0
    on_hold = exists().where(
        ComplianceProfile.subject_id == found.c.subject_key,
        LegalHold.compliance_profile_id == ComplianceProfile.id,
        active_hold(now),
    )
    since = now - timedelta(days=bucket.rejection_cooloff_days)
    recent: ColumnElement[bool] = exists().where(
        ComplianceProfile.subject_id == found.c.subject_key,
        DecisionLedger.compliance_profile_id == ComplianceProfile.id,
        cooling_off_condition(bucket.name, since),
    )
    if bucket.rejection_cooloff_days <= 0:
        recent = false()
    held = session.scalar(select(func.count()).select_from(found).where(on_hold)) or 0
    cooled = session.scalar(select(func.count()).select_from(found).where(~on_hold, recent)) or 0
    due = select(found.c.subject_key).where(~on_hold, ~recent).subquery("due")
    profiles = ComplianceProfile.__table__
    records = DeletionRecord.__table__
    stamp = literal(now, UTCDateTime())
    new_profiles = rows_changed(
        session.execute(
            _insert_for(session)(profiles)
            .from_select(
                ["subject_id", "created_at", "updated_at"],
                select(due.c.subject_key, stamp, stamp).where(true()),
            )
            .on_conflict_do_nothing(index_elements=["subject_id"])
        )
    )
    created = rows_changed(
        session.execute(
            _insert_for(session)(records)
            .from_select(
                RECORD_COLUMNS,
                select(
                    profiles.c.id,
                    literal(bucket.name),
                    literal(scheduled_at, UTCDateTime()),
                    literal(None, Boolean()),
                    literal(False),
                    stamp,
                    stamp,
                )
                .join(due, profiles.c.subject_id == due.c.subject_key)
                .where(true()),
            )
            .on_conflict_do_nothing(
                index_elements=["compliance_profile_id", "bucket"],
                index_where=records.c.deletion_applied_at.is_(None),
            )
        )
    )
    if created:
        record_event(
            session,
            actor=actor,
            action="deletion_records.created",
            target_type="bucket",
            target_id=bucket.name,
            details={
                "created": created,
                "skipped": total - held - cooled - created,
                "in_database": True,
                **({"held": held} if held else {}),
                **({"cooling_off": cooled} if cooled else {}),
            },
        )
    session.commit()
    log_event(
        "deletion_records.created",
        bucket=bucket.name,
        created=created,
        due=total,
        held=held,
        cooling_off=cooled,
    )
    return CreateRecordsResult(
        bucket=bucket.name,
        due=total,
        created=created,
        skipped=total - held - cooled - created,
        profiles_created=new_profiles,
        elapsed_s=round(time.monotonic() - started, 3),
        executed=True,
        held=held,
        cooling_off=cooled,
        cooloff_days=bucket.rejection_cooloff_days,
    )
