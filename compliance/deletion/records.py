"""Deletion records: one open decision per (subject, bucket), found by the bucket's rules."""

from __future__ import annotations

import io
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Connection,
    Engine,
    and_,
    column,
    delete,
    exists,
    false,
    func,
    insert,
    literal,
    select,
    table,
    text,
    true,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from compliance.audit.chain import record_event
from compliance.audit.subject_keys import either_form, key_secret
from compliance.deletion.holds import held_subjects, on_hold
from compliance.deletion.ledger import cooling_off, cooling_off_condition
from compliance.deletion.profiles import count_new_profiles, insert_missing_profiles
from compliance.deletion.rules import copy_due_subjects, due_query, iter_due_subjects
from compliance.errors import InvalidInput
from compliance.logs import Progress, log_event
from compliance.policy.datamap import DataMap
from compliance.policy.model import Bucket
from compliance.store.models import ComplianceProfile, DecisionLedger, DeletionRecord, utcnow
from compliance.store.queries import PROFILE_KEY, of_type, record_open
from compliance.store.sql import dialect_insert, rows_changed
from compliance.store.states import LedgerDecision
from compliance.store.types import UTCDateTime

_T = TypeVar("_T")

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
# Due keys copied between two PostgreSQL databases wait in memory up to this size, then on disk.
KEYS_IN_MEMORY = 64 * 1024 * 1024


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
    #: Due subjects left out because their record in this bucket was rejected or excluded
    #: recently (the two counted apart below; one rejected and excluded counts as rejected).
    cooling_off: int = 0
    cooloff_days: int = 0
    rejected_recently: int = 0
    excluded_recently: int = 0


def _open_record(bucket: str) -> Any:
    return exists().where(
        DeletionRecord.compliance_profile_id == ComplianceProfile.id,
        DeletionRecord.bucket == bucket,
        record_open,
    )


def _count_open(session: Session, bucket: Bucket, subject_ids: list[str]) -> int:
    return (
        session.scalar(
            select(func.count()).where(
                of_type(bucket.subject),
                ComplianceProfile.subject_id.in_(subject_ids),
                _open_record(bucket.name),
            )
        )
        or 0
    )


def add_records(
    session: Session,
    bucket: str,
    subject_ids: list[str],
    *,
    subject_type: str,
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
    new = _NewRecords(bucket, subject_type, scheduled_at, now, accepted)
    if session.get_bind().dialect.name == "postgresql":
        created, new_profiles, _first, _last = _add_records_in_one_statement(
            session, new, subject_ids
        )
    else:
        new_profiles, _profile_ids, created = _add_records_in_two_statements(
            session, new, subject_ids
        )
    skipped = len(subject_ids) - created
    if created:
        # Counts, as every way of opening records audits them: "[first, last]" under a name
        # for ids read as if every profile between them were in it.
        _audit_created(session, actor, bucket, created, skipped)
    return created, skipped, new_profiles


def _audit_created(
    session: Session, actor: str, bucket: str, created: int, skipped: int, **details: Any
) -> None:
    """Every path that opens records leaves the same evidence: how many, and how many were open."""
    record_event(
        session,
        actor=actor,
        action="deletion_records.created",
        target_type="bucket",
        target_id=bucket,
        details={"created": created, "skipped": skipped, **details},
    )


def _open_records_sql(keys: str, existing: str, staged: str = "", counts: str = "") -> str:
    """Profiles and records in one PostgreSQL round trip, from the subject keys in ``keys``.

    ``existing`` reads the snapshot from before ``fresh`` inserted, so together they name
    every subject's profile exactly once. Both ways of feeding keys share this statement.
    """
    return f"""
WITH {staged}fresh AS (
    INSERT INTO compliance_profiles (subject_id, subject_type, created_at, updated_at)
    SELECT key, :subject_type, :now, :now FROM {keys}
    ON CONFLICT (subject_id, subject_type) DO NOTHING
    RETURNING id
), existing AS (
    {existing}
), opened AS (
    INSERT INTO deletion_records (compliance_profile_id, bucket, deletion_scheduled_at,
        accepted_for_deletion, is_manually_reviewed, created_at, updated_at)
    SELECT id, :bucket, :scheduled_at, :accepted_for_deletion, false, :now, :now
    FROM (SELECT id FROM fresh UNION ALL SELECT id FROM existing) AS profiles
    ON CONFLICT (compliance_profile_id, bucket) WHERE deletion_applied_at IS NULL DO NOTHING
    RETURNING compliance_profile_id
)
SELECT {counts}(SELECT count(*) FROM fresh), count(*),
       min(compliance_profile_id), max(compliance_profile_id)
FROM opened
"""


_ADD_RECORDS_SQL = text(
    _open_records_sql(
        "unnest(CAST(:keys AS text[])) AS key",
        "SELECT id FROM compliance_profiles "
        "WHERE subject_id = ANY(CAST(:keys AS text[])) AND subject_type = :subject_type",
    )
)
# The same work, for the staged keys numbered ``lo < n <= hi``, counting them too.
_ADD_STAGED_RECORDS_SQL = text(
    _open_records_sql(
        "staged",
        "SELECT p.id FROM compliance_profiles AS p "
        "JOIN staged ON p.subject_id = staged.key AND p.subject_type = :subject_type",
        staged="staged AS (\n    SELECT key FROM pd_due_keys WHERE n > :lo AND n <= :hi\n), ",
        counts="(SELECT count(*) FROM staged), ",
    )
)


# The same work without ON CONFLICT where no conflict can arise, which costs PostgreSQL about as
# much again as the inserts themselves. One pass over the profiles, in one snapshot, sorts the
# keys: subjects with a profile get their record as before (ON CONFLICT skips those open); the
# others get a new profile and a new record by plain INSERTs, since nobody else can know a
# profile id this statement makes. Only a profile made meanwhile by someone else (or a rule
# naming a subject twice) can clash: see _without_conflicts.
_ADD_STAGED_RECORDS_FAST_SQL = text(
    """
WITH staged AS (
    SELECT key FROM pd_due_keys WHERE n > :lo AND n <= :hi
), matched AS (
    SELECT staged.key, p.id
    FROM staged LEFT JOIN compliance_profiles AS p
        ON p.subject_id = staged.key AND p.subject_type = :subject_type
), fresh AS (
    INSERT INTO compliance_profiles (subject_id, subject_type, created_at, updated_at)
    SELECT key, :subject_type, :now, :now FROM matched WHERE id IS NULL
    RETURNING id
), opened_fresh AS (
    INSERT INTO deletion_records (compliance_profile_id, bucket, deletion_scheduled_at,
        accepted_for_deletion, is_manually_reviewed, created_at, updated_at)
    SELECT id, :bucket, :scheduled_at, :accepted_for_deletion, false, :now, :now FROM fresh
), opened_existing AS (
    INSERT INTO deletion_records (compliance_profile_id, bucket, deletion_scheduled_at,
        accepted_for_deletion, is_manually_reviewed, created_at, updated_at)
    SELECT id, :bucket, :scheduled_at, :accepted_for_deletion, false, :now, :now
    FROM matched WHERE id IS NOT NULL
    ON CONFLICT (compliance_profile_id, bucket) WHERE deletion_applied_at IS NULL DO NOTHING
    RETURNING compliance_profile_id
)
SELECT (SELECT count(*) FROM matched), f.n, f.n + e.n, least(f.lo, e.lo), greatest(f.hi, e.hi)
FROM (SELECT count(*) AS n, min(id) AS lo, max(id) AS hi FROM fresh) AS f,
     (SELECT count(*) AS n, min(compliance_profile_id) AS lo, max(compliance_profile_id) AS hi
      FROM opened_existing) AS e
"""
)


def _unique_violation(exc: IntegrityError) -> bool:
    """PostgreSQL refused a duplicate key (SQLSTATE 23505), not some other constraint."""
    return getattr(exc.orig, "pgcode", None) == "23505"


def _without_conflicts(session: Session, fast: Callable[[], _T], safe: Callable[[], _T]) -> _T:
    """Run ``fast`` (plain INSERTs of new profiles) in a savepoint; if another writer made one
    of those profiles meanwhile, undo it and run ``safe`` (ON CONFLICT DO NOTHING throughout).

    Both open the same records; the clash is rare, so a run almost always pays the plain price.
    """
    try:
        with session.begin_nested():
            return fast()
    except IntegrityError as exc:
        if not _unique_violation(exc):
            raise
    log_event("deletion_records.profile_clash", logging.DEBUG)
    return safe()


@dataclass(frozen=True)
class _NewRecords:
    """What the records opened in one statement share, whichever way the statement is written."""

    bucket: str
    subject_type: str
    scheduled_at: datetime
    now: datetime
    accepted: bool | None

    def params(self) -> dict[str, Any]:
        """Bound values for the PostgreSQL statements, naive UTC like the stored columns."""
        naive = UTCDateTime().process_bind_param
        return {
            "bucket": self.bucket,
            "subject_type": self.subject_type,
            "accepted_for_deletion": self.accepted,
            "scheduled_at": naive(self.scheduled_at, None),
            "now": naive(self.now, None),
        }

    def values(self) -> tuple[Any, ...]:
        """A new record's columns after its profile id, in RECORD_COLUMNS order."""
        stamp = literal(self.now, UTCDateTime())
        return (
            literal(self.bucket),
            literal(self.scheduled_at, UTCDateTime()),
            literal(self.accepted, Boolean()),
            literal(False),
            stamp,
            stamp,
        )


def _add_records_in_one_statement(
    session: Session, new: _NewRecords, subject_ids: list[str]
) -> tuple[int, int, int, int]:
    """(records created, profiles created, lowest and highest profile id given a record)."""
    new_profiles, created, first, last = session.execute(
        _ADD_RECORDS_SQL,
        {"keys": subject_ids, **new.params()},
    ).one()
    return created, new_profiles, first, last


def _add_records_in_two_statements(
    session: Session, new: _NewRecords, subject_ids: list[str]
) -> tuple[int, list[int], int]:
    """(profiles created, profile ids given a record, records created)."""
    new_profiles = insert_missing_profiles(session, new.subject_type, subject_ids, new.now)
    fresh = select(ComplianceProfile.id, *new.values())
    profile_ids = session.scalars(
        _insert_open_records(
            session,
            fresh.where(of_type(new.subject_type), ComplianceProfile.subject_id.in_(subject_ids)),
        ).returning(DeletionRecord.__table__.c.compliance_profile_id)
    ).all()
    return new_profiles, list(profile_ids), len(profile_ids)


def _insert_open_records(session: Session, rows: Any) -> Any:
    """INSERT ... SELECT of new records; the partial unique index skips subjects already open."""
    return (
        dialect_insert(session)(DeletionRecord.__table__)
        .from_select(RECORD_COLUMNS, rows)
        .on_conflict_do_nothing(
            index_elements=["compliance_profile_id", "bucket"],
            index_where=record_open,
        )
    )


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
    """
    plan = plan_deletion_records(
        session, datamap, bucket_name, chunk_size=chunk_size, now=now or utcnow()
    )
    if plan.way == IN_DATABASE:
        return _create_in_database(session, datamap, plan, actor=actor, execute=execute)
    if execute and plan.way == STAGED:
        return _create_from_staged_keys(session, datamap, plan, actor=actor)
    return _create_in_chunks(session, datamap, plan, actor=actor, execute=execute)


@dataclass(frozen=True)
class RecordsPlan:
    """How a run opens the bucket's records, settled before any key is read."""

    bucket: Bucket
    chunk_size: int
    now: datetime
    scheduled_at: datetime
    #: IN_DATABASE, STAGED or CHUNKED. A dry run counts in the database for IN_DATABASE, and
    #: chunk by chunk for the other two (the staged way's figures are the chunked way's).
    way: str

    @property
    def new_records(self) -> _NewRecords:
        return _NewRecords(self.bucket.name, self.bucket.subject, self.scheduled_at, self.now, None)


IN_DATABASE, STAGED, CHUNKED = "in_database", "staged", "chunked"


def plan_deletion_records(
    session: Session, datamap: DataMap, bucket_name: str, *, chunk_size: int | None, now: datetime
) -> RecordsPlan:
    """Refuse a bad chunk size or a bucket without rules, and choose the way records open.

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
    way = IN_DATABASE if same_database(datamap) else STAGED if postgresql else CHUNKED
    return RecordsPlan(bucket, chunk_size, now, now + timedelta(days=bucket.grace_days), way)


@dataclass
class _Tally:
    """What a run found and did so far; every way of opening records reports the same figures."""

    bucket: Bucket
    due: int = 0
    created: int = 0
    skipped: int = 0  # due subjects whose record was open already
    profiles: int = 0
    held: int = 0  # left out: a legal hold is in force
    cooled: int = 0  # left out: rejected or excluded in this bucket within the cool-off
    rejected: int = 0  # of those, the ones a rejected batch held

    def result(self, elapsed: float, *, executed: bool) -> CreateRecordsResult:
        return CreateRecordsResult(
            self.bucket.name, self.due, self.created, self.skipped, self.profiles,
            round(elapsed, 3), executed, self.held, self.cooled, self.bucket.rejection_cooloff_days,
            self.rejected, self.cooled - self.rejected,
        )  # fmt: skip

    def log_held_back(self) -> None:
        if self.held or self.cooled:
            log_event(
                "deletion_records.held_back", bucket=self.bucket.name, held=self.held,
                cooling_off=self.cooled, rejected=self.rejected,
            )  # fmt: skip


def _create_in_chunks(
    session: Session, datamap: DataMap, plan: RecordsPlan, *, actor: str, execute: bool
) -> CreateRecordsResult:
    """The keys travel chunk by chunk; a dry run counts each chunk instead of opening it."""
    bucket = plan.bucket
    progress = Progress("deletion_records.progress", bucket=bucket.name)
    tally = _Tally(bucket)
    for found in iter_due_subjects(datamap, bucket, plan.now, chunk=plan.chunk_size):
        tally.due += len(found)
        chunk = _hold_back(session, bucket, found, plan.now, tally, key_secret(datamap.policy))
        c = s = p = 0
        if chunk and execute:
            c, s, p = add_records(
                session, bucket.name, chunk, subject_type=bucket.subject, actor=actor,
                scheduled_at=plan.scheduled_at, now=plan.now,
            )  # fmt: skip
            session.commit()
        else:
            if chunk:
                s = _count_open(session, bucket, chunk)
                c = len(chunk) - s
                p = count_new_profiles(session, bucket.subject, chunk)
            session.rollback()
        tally.created += c
        tally.skipped += s
        tally.profiles += p
        progress.advance(len(found), created=tally.created, skipped=tally.skipped)
    tally.log_held_back()
    return tally.result(progress.elapsed, executed=execute)


def _hold_back(
    session: Session,
    bucket: Bucket,
    found: list[str],
    now: datetime,
    tally: _Tally,
    secret: bytes | None,
) -> list[str]:
    """A legal hold wins over every rule; a recent rejection is not proposed again (a subject
    erased since is found by the keyed hash of their key: ``secret``)."""
    on_hold = held_subjects(session, found, now=now, subject_type=bucket.subject)
    rest = [s for s in found if s not in on_hold]
    days, name = bucket.rejection_cooloff_days, bucket.name
    recent = cooling_off(session, name, days, rest, now=now, secret=secret)
    rejected = cooling_off(
        session, name, days, list(recent), now=now, decisions=_REJECTED, secret=secret
    )
    tally.held += len(on_hold)
    tally.cooled += len(recent)
    tally.rejected += len(rejected)
    return [s for s in rest if s not in recent]


def _on_hold(bucket: Bucket, key: Any, now: datetime) -> ColumnElement[bool]:
    """The bucket's subject named by ``key`` is under a hold in force at ``now`` (of any kind
    of hold)."""
    return on_hold(bucket.subject, key, now)


#: The cool-off's decisions, when only rejected batches are counted.
_REJECTED = (LedgerDecision.REJECTED,)


@dataclass(frozen=True)
class _KeyMatch:
    """How SQL finds a subject's profile by a live key: as typed, or hashed once erased."""

    secret: bytes | None
    dialect: str

    def __call__(self, key: Any) -> ColumnElement[bool]:
        return either_form(ComplianceProfile.subject_id, key, self.secret, self.dialect)


def _key_match(session: Session, datamap: DataMap) -> _KeyMatch:
    return _KeyMatch(key_secret(datamap.policy), session.get_bind().dialect.name)


def _rejected_recently(
    key: Any,
    bucket: Bucket,
    now: datetime,
    match: _KeyMatch,
    decisions: tuple[LedgerDecision, ...] | None = None,
) -> ColumnElement[bool]:
    """The subject named by ``key`` had a record in this bucket rejected (or excluded) within
    the cool-off; ``decisions`` narrows it to one of the two."""
    if bucket.rejection_cooloff_days <= 0:
        return false()
    since = now - timedelta(days=bucket.rejection_cooloff_days)
    return exists().where(
        match(key),
        DecisionLedger.compliance_profile_id == ComplianceProfile.id,
        cooling_off_condition(bucket.name, since, decisions),
    )


def _copy_line(key: str) -> str:
    """One key in COPY's text format (backslash, tab and line ends escaped)."""
    escaped = key.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
    return escaped.replace("\r", "\\r") + "\n"


def _create_from_staged_keys(
    session: Session, datamap: DataMap, plan: RecordsPlan, *, actor: str
) -> CreateRecordsResult:
    """PostgreSQL: COPY the due keys into a temporary table, then open records from it.

    The keys cross from the application database once, as a COPY stream (no key becomes a
    bound value), and each commit opens up to ``chunk_size`` subjects' records by a join on
    the server. A run killed halfway keeps the commits it made; the temporary table dies
    with its connection, and the rerun stages the keys again and skips what is open.
    """
    bucket = plan.bucket
    progress = Progress("deletion_records.progress", bucket=bucket.name)
    tally = _Tally(bucket)
    engine = session.get_bind()
    assert isinstance(engine, Engine), "a job session is bound to an engine"
    with engine.connect() as conn, Session(bind=conn) as staging:
        tally.due = _stage_keys(conn, staging, datamap, plan)
        match = _key_match(staging, datamap)
        tally.held, tally.cooled, tally.rejected = _hold_back_staged(staging, bucket, plan, match)
        staging.commit()
        log_event("deletion_records.staged", logging.DEBUG, bucket=bucket.name, due=tally.due)
        _open_staged(staging, plan, tally, progress, actor=actor)
        staging.execute(text("DROP TABLE pd_due_keys"))
        staging.commit()
    tally.log_held_back()
    tally.skipped = tally.due - tally.held - tally.cooled - tally.created
    return tally.result(progress.elapsed, executed=True)


def _stage_keys(conn: Connection, staging: Session, datamap: DataMap, plan: RecordsPlan) -> int:
    """COPY every due key into ``pd_due_keys``, numbered in order; return how many."""
    staging.execute(
        text(
            "CREATE TEMPORARY TABLE IF NOT EXISTS pd_due_keys "
            "(n bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, key text NOT NULL)"
        )
    )
    staging.execute(text("TRUNCATE pd_due_keys RESTART IDENTITY"))
    due = 0
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        if datamap.engine.dialect.name == "postgresql":
            # Server to server as COPY streams: no key becomes a Python object on the way.
            with tempfile.SpooledTemporaryFile(max_size=KEYS_IN_MEMORY) as keys:
                due = copy_due_subjects(datamap, plan.bucket, plan.now, keys)
                keys.seek(0)
                cursor.copy_expert("COPY pd_due_keys (key) FROM STDIN", keys)
            return due
        chunk_size = min(plan.chunk_size, 10_000)
        for chunk in iter_due_subjects(datamap, plan.bucket, plan.now, chunk=chunk_size):
            lines = io.StringIO("".join(_copy_line(str(k)) for k in chunk))
            cursor.copy_expert("COPY pd_due_keys (key) FROM STDIN", lines)
            due += len(chunk)
    finally:
        cursor.close()
    return due


def _open_staged(
    staging: Session, plan: RecordsPlan, tally: _Tally, progress: Progress, *, actor: str
) -> None:
    """Open the staged keys' records ``chunk_size`` at a time, each part audited and committed."""
    size = plan.chunk_size
    for lo in range(0, tally.due, size):
        params = {"lo": lo, "hi": lo + size, **plan.new_records.params()}
        in_part, new_profiles, opened, _first, _last = _without_conflicts(
            staging,
            partial(_one_row, staging, _ADD_STAGED_RECORDS_FAST_SQL, params),
            partial(_one_row, staging, _ADD_STAGED_RECORDS_SQL, params),
        )
        if opened:
            _audit_created(staging, actor, plan.bucket.name, opened, in_part - opened)
        staging.commit()
        tally.created += opened
        tally.profiles += new_profiles
        progress.advance(min(size, tally.due - lo), created=tally.created)


def _one_row(session: Session, statement: Any, params: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(session.execute(statement, params).one())


def _hold_back_staged(
    session: Session, bucket: Bucket, plan: RecordsPlan, match: _KeyMatch
) -> tuple[int, int, int]:
    """Drop from the staged keys the subjects on legal hold or rejected recently.

    A legal hold wins over every rule; a recent rejection is not proposed again. Returns
    (held, cooling off, of those rejected), counted as the chunked path counts them.
    """
    staged, now = table("pd_due_keys", column("key")), plan.now
    held = rows_changed(session.execute(delete(staged).where(_on_hold(bucket, staged.c.key, now))))
    if bucket.rejection_cooloff_days <= 0:
        return held, 0, 0
    rejected = _rejected_recently(staged.c.key, bucket, now, match, _REJECTED)
    rejected_count = session.scalar(select(func.count()).select_from(staged).where(rejected)) or 0
    recent = _rejected_recently(staged.c.key, bucket, now, match)
    return held, rows_changed(session.execute(delete(staged).where(recent))), rejected_count


def same_database(datamap: DataMap) -> bool:
    """Both URLs name one database: the rules can feed the compliance tables directly."""
    policy = datamap.policy
    return policy.database_url == policy.app_database_url


def _create_in_database(
    session: Session, datamap: DataMap, plan: RecordsPlan, *, actor: str, execute: bool
) -> CreateRecordsResult:
    """Profiles and records straight from the rules, in one transaction, no key leaving the server.

    All or nothing: a run killed halfway commits nothing and the rerun does the whole work.
    The dry run counts, over the same due subjects, the profiles and records it would add.
    """
    started = time.monotonic()
    bucket, now = plan.bucket, plan.now
    found = due_query(datamap, bucket, now).subquery("found")
    tally = _Tally(bucket, due=session.scalar(select(func.count()).select_from(found)) or 0)
    on_hold = _on_hold(bucket, found.c.subject_key, now)
    match = _key_match(session, datamap)
    recent = _rejected_recently(found.c.subject_key, bucket, now, match)
    tally.held = session.scalar(select(func.count()).select_from(found).where(on_hold)) or 0
    tally.cooled = (
        session.scalar(select(func.count()).select_from(found).where(~on_hold, recent)) or 0
    )
    rejected = _rejected_recently(found.c.subject_key, bucket, now, match, _REJECTED)
    tally.rejected = (
        session.scalar(select(func.count()).select_from(found).where(~on_hold, rejected)) or 0
    )
    due = select(found.c.subject_key).where(~on_hold, ~recent).subquery("due")
    if not execute:
        tally.profiles, tally.created = _count_in_database(session, due, plan)
        tally.skipped = tally.due - tally.held - tally.cooled - tally.created
        session.rollback()
        return tally.result(time.monotonic() - started, executed=False)
    tally.profiles, tally.created = _open_in_database(session, due, plan)
    tally.skipped = tally.due - tally.held - tally.cooled - tally.created
    if tally.created:
        _audit_created(
            session, actor, bucket.name, tally.created, tally.skipped, in_database=True,
            **({"held": tally.held} if tally.held else {}),
            **({"cooling_off": tally.cooled} if tally.cooled else {}),
        )  # fmt: skip
    session.commit()
    log_event(
        "deletion_records.created", bucket=bucket.name, created=tally.created, due=tally.due,
        held=tally.held, cooling_off=tally.cooled,
    )  # fmt: skip
    return tally.result(time.monotonic() - started, executed=True)


def _count_in_database(session: Session, due: Any, plan: RecordsPlan) -> tuple[int, int]:
    """(profiles, records) ``_open_in_database`` would create for the due subjects."""
    mine = of_type(plan.bucket.subject)
    has_profile = exists().where(mine, ComplianceProfile.subject_id == due.c.subject_key)
    has_open = exists().where(
        mine, ComplianceProfile.subject_id == due.c.subject_key, _open_record(plan.bucket.name)
    )
    profiles = session.scalar(select(func.count()).select_from(due).where(~has_profile))
    records = session.scalar(select(func.count()).select_from(due).where(~has_open))
    return profiles or 0, records or 0


def _open_in_database(session: Session, due: Any, plan: RecordsPlan) -> tuple[int, int]:
    """(profiles created, records created) by INSERT ... SELECTs over the due subjects.

    (``WHERE true``: SQLite needs a WHERE before an upsert clause to parse INSERT ... SELECT.)
    """
    if session.get_bind().dialect.name == "postgresql":
        return _without_conflicts(
            session,
            lambda: _open_in_database_plainly(session, due, plan),
            lambda: _open_in_database_upserting(session, due, plan),
        )
    return _open_in_database_upserting(session, due, plan)


def _open_in_database_plainly(session: Session, due: Any, plan: RecordsPlan) -> tuple[int, int]:
    """PostgreSQL: ON CONFLICT only where a record may be open already, as in the staged path.

    First the records of subjects that have a profile (the partial unique index skips those
    open); then, in one statement, a profile and a record for each subject without one.
    """
    profiles = ComplianceProfile.__table__
    kind = plan.bucket.subject
    existing = select(profiles.c.id, *plan.new_records.values()).join(
        due, and_(profiles.c.subject_id == due.c.subject_key, profiles.c.subject_type == kind)
    )
    created = rows_changed(session.execute(_insert_open_records(session, existing)))
    stamp = literal(plan.now, UTCDateTime())
    known = profiles.alias("known")
    has_profile = exists().where(
        known.c.subject_id == due.c.subject_key, known.c.subject_type == kind
    )
    fresh = (
        insert(ComplianceProfile)
        .from_select(
            ["subject_id", "subject_type", "created_at", "updated_at"],
            select(due.c.subject_key, literal(kind), stamp, stamp).where(~has_profile),
        )
        .returning(profiles.c.id)
        .cte("fresh")
    )
    new_profiles = rows_changed(
        session.execute(
            insert(DeletionRecord).from_select(
                RECORD_COLUMNS, select(fresh.c.id, *plan.new_records.values())
            )
        )
    )
    return new_profiles, created + new_profiles


def _open_in_database_upserting(session: Session, due: Any, plan: RecordsPlan) -> tuple[int, int]:
    """Profiles and records with ON CONFLICT DO NOTHING: safe whoever writes alongside."""
    profiles = ComplianceProfile.__table__
    stamp = literal(plan.now, UTCDateTime())
    kind = plan.bucket.subject
    new_profiles = rows_changed(
        session.execute(
            dialect_insert(session)(profiles)
            .from_select(
                ["subject_id", "subject_type", "created_at", "updated_at"],
                select(due.c.subject_key, literal(kind), stamp, stamp).where(true()),
            )
            .on_conflict_do_nothing(index_elements=PROFILE_KEY)
        )
    )
    rows = select(profiles.c.id, *plan.new_records.values()).join(
        due, and_(profiles.c.subject_id == due.c.subject_key, profiles.c.subject_type == kind)
    )
    created = rows_changed(session.execute(_insert_open_records(session, rows.where(true()))))
    return new_profiles, created
