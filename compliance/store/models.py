"""The compliance database: this tool's own tables. Table and column names are a contract."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    FetchedValue,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from compliance import clock
from compliance.store.states import (
    DEFAULT_SUBJECT_TYPE,
    OPEN_DSAR_STATUSES,
    BatchStatus,
    DsarKind,
    DsarStatus,
    FindingStatus,
    HoldKind,
    JobRunStatus,
    TaskStatus,
    sql_in,
)
from compliance.store.types import UTCDateTime

OPEN_DSAR = f"status IN ({sql_in(OPEN_DSAR_STATUSES)})"
# Written as ``record_due`` (store/queries.py) writes it, so the planner proves the match.
DUE_RECORDS = "accepted_for_deletion IS true AND deletion_applied_at IS NULL"


def utcnow() -> datetime:
    """The library's now: ``compliance.clock``, which tests may replace."""
    return clock.now()


# BIGINT on PostgreSQL, but INTEGER on SQLite so ids stay auto-incrementing rowids.
BigId = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: JSON}


class Timestamped:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class OfDsarRequest:
    """A row that hangs off one DSAR request and is deleted with it.

    ``sort_order`` keeps the id and the request's id first, where the migrations put them.
    """

    id: Mapped[int] = mapped_column(BigId, primary_key=True, sort_order=-1)
    dsar_request_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("dsar_requests.id", ondelete="CASCADE"), index=True, sort_order=-1
    )


class OfSubjectType:
    """Added by migration 0020: the kind of data subject ([subjects.NAME]) a row is about.
    A key names a subject only with its kind: customer 5 is not employee 5."""

    subject_type: Mapped[str] = mapped_column(
        String(64), default=DEFAULT_SUBJECT_TYPE, server_default=DEFAULT_SUBJECT_TYPE
    )


class ComplianceProfile(OfSubjectType, Timestamped, Base):
    """One data subject of the application database, known by its key there."""

    __tablename__ = "compliance_profiles"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(255))

    deletion_records: Mapped[list[DeletionRecord]] = relationship(back_populates="profile")

    __table_args__ = (
        UniqueConstraint("subject_id", "subject_type", name="uq_compliance_profiles_subject"),
    )


class DeletionBatch(Timestamped, Base):
    __tablename__ = "deletion_batches"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    bucket: Mapped[str] = mapped_column(String(100), index=True)
    reviewed_status: Mapped[str] = mapped_column(
        String(20), default=BatchStatus.PENDING, index=True
    )
    reviewed_at: Mapped[datetime | None]
    reviewed_by: Mapped[str | None] = mapped_column(String(255))
    reviewed_reason: Mapped[str | None] = mapped_column(Text)
    # Added by migration 0004: the erasure plan the officer accepted (see erasure_plans).
    accepted_plan_hash: Mapped[str | None] = mapped_column(String(64))

    records: Mapped[list[DeletionRecord]] = relationship(back_populates="batch")

    __table_args__ = (
        CheckConstraint(
            f"reviewed_status IN ({sql_in(BatchStatus)})", name="ck_deletion_batches_status"
        ),
    )


class DeletionRecord(Timestamped, Base):
    """A decision to be taken, then carried out, about one subject's data in one bucket."""

    __tablename__ = "deletion_records"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    compliance_profile_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("compliance_profiles.id", ondelete="CASCADE")
    )
    bucket: Mapped[str] = mapped_column(String(100))
    deletion_batch_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("deletion_batches.id", ondelete="SET NULL")
    )
    deletion_scheduled_at: Mapped[datetime]
    deletion_applied_at: Mapped[datetime | None]
    accepted_for_deletion: Mapped[bool | None] = mapped_column(Boolean)
    is_manually_reviewed: Mapped[bool] = mapped_column(Boolean, default=False)
    review_note: Mapped[str | None] = mapped_column(Text)
    deletion_error: Mapped[str | None] = mapped_column(Text)
    # Added by migration 0004: a foreign key blocked erasure under this plan; it waits until
    # the plan changes or an officer retries it, instead of failing again on every run.
    blocked_plan_hash: Mapped[str | None] = mapped_column(String(64))
    # Added by migration 0004: the plan apply-deletions carried out (narrower than accepted,
    # or the same), kept in the decision ledger for replay-erasures.
    applied_plan_hash: Mapped[str | None] = mapped_column(String(64))
    # Added by migration 0011: the plan an erasure request's approval accepted (a record in a
    # batch has its batch's); apply-deletions refuses the record if the policy widened since.
    accepted_plan_hash: Mapped[str | None] = mapped_column(String(64))

    profile: Mapped[ComplianceProfile] = relationship(back_populates="deletion_records")
    batch: Mapped[DeletionBatch | None] = relationship(back_populates="records")

    __table_args__ = (
        # At most one open (not applied) record per (profile, bucket).
        Index(
            "uq_deletion_records_open",
            "compliance_profile_id",
            "bucket",
            unique=True,
            sqlite_where=text("deletion_applied_at IS NULL"),
            postgresql_where=text("deletion_applied_at IS NULL"),
        ),
        Index("ix_deletion_records_batch", "deletion_batch_id"),
        Index("ix_deletion_records_bucket_state", "bucket", "accepted_for_deletion"),
        # Only the records apply-deletions still has to erase, in the order it claims them.
        Index(
            "ix_deletion_records_due",
            "bucket",
            "id",
            sqlite_where=text(DUE_RECORDS),
            postgresql_where=text(DUE_RECORDS),
        ),
    )


class DsarRequest(OfSubjectType, Base):
    __tablename__ = "dsar_requests"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    reference: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    subject_id: Mapped[str] = mapped_column(String(255), index=True)
    subject_email: Mapped[str | None] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(20), default=DsarStatus.PENDING, index=True)
    requested_by: Mapped[str] = mapped_column(String(255))
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    identity_check: Mapped[str | None] = mapped_column(Text)
    due_at: Mapped[datetime]
    extended_due_at: Mapped[datetime | None]
    extension_reason: Mapped[str | None] = mapped_column(Text)
    reviewed_by: Mapped[str | None] = mapped_column(String(255))
    reviewed_at: Mapped[datetime | None]
    reviewed_reason: Mapped[str | None] = mapped_column(Text)
    completed_at: Mapped[datetime | None]
    export_path: Mapped[str | None] = mapped_column(Text)
    export_bytes: Mapped[int | None] = mapped_column(BigInteger)
    export_sha256: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(Text)
    # Added by migration 0002 (DSAR processing).
    extension_months: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    deletion_record_id: Mapped[int | None] = mapped_column(BigId)
    processing_started_at: Mapped[datetime | None]
    # Added by migration 0006 (the request desk). How identity was checked is a method from
    # [dsar] identity_methods plus the free-text ``identity_check`` note; the client IP and
    # user agent of an API intake stay here, never in the audit chain.
    identity_method: Mapped[str | None] = mapped_column(String(50))
    channel: Mapped[str | None] = mapped_column(String(20))  # dashboard | cli | api
    client_ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None]
    # Added by migration 0010: when the access export was written (it is ``ready`` until the
    # link email goes out, and ``completed_at`` is that delivery); exports expire from here.
    exported_at: Mapped[datetime | None]
    # Added by migration 0011: an erasure approved with [dsar] erasure_review accepted this
    # plan (its impact preview); the request's deletion record is accepted under it.
    accepted_plan_hash: Mapped[str | None] = mapped_column(String(64))
    # Added by migration 0016: the jurisdiction the request falls under ([jurisdictions.NAME]),
    # the latest its deadline may be extended to there (computed at intake, as due_at is),
    # and the days it was extended by besides extension_months.
    jurisdiction: Mapped[str] = mapped_column(String(64), default="gdpr", server_default="gdpr")
    latest_due_at: Mapped[datetime]
    extension_days: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Added by migration 0018: what an objection is to (compliance.dsar.objections.Scope).
    scope: Mapped[str | None] = mapped_column(String(50))
    # Added by migration 0019: numbered by the database on every insert and update, whoever
    # writes, so the newest is the requests' version for cached lists (never set it here).
    last_change: Mapped[int] = mapped_column(
        BigId, server_default=FetchedValue(), server_onupdate=FetchedValue(), index=True
    )

    __table_args__ = (
        Index("ix_dsar_requests_subject_kind_requested", "subject_id", "kind", "requested_at"),
        # At most one open request per (subject, kind); a duplicate returns the open one.
        Index(
            "uq_dsar_requests_open",
            "subject_id",
            "subject_type",
            "kind",
            unique=True,
            sqlite_where=text(OPEN_DSAR),
            postgresql_where=text(OPEN_DSAR),
        ),
        CheckConstraint(f"status IN ({sql_in(DsarStatus)})", name="ck_dsar_requests_status"),
        CheckConstraint(f"kind IN ({sql_in(DsarKind)})", name="ck_dsar_requests_kind"),
    )


class DsarDelivery(OfDsarRequest, Base):
    """A one-time download of a finished export; only hashes of the secrets are kept."""

    __tablename__ = "dsar_deliveries"
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    otp_hash: Mapped[str] = mapped_column(String(128))
    otp_salt: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    token_expires_at: Mapped[datetime]
    otp_expires_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_at: Mapped[datetime | None]
    downloaded_at: Mapped[datetime | None]


class DsarNote(OfDsarRequest, Base):
    """An internal note staff add to a request; the audit trail records that, not the text."""

    __tablename__ = "dsar_notes"
    author: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DsarNotice(OfDsarRequest, Base):
    """A notice to the data subject (acknowledgement, extension, refusal, completion)."""

    __tablename__ = "dsar_notices"
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))  # NoticeStatus
    reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)


class DsarCorrection(OfDsarRequest, Base):
    """One correction a rectification request asks for (added by migration 0018).

    A mapped column (``table_name``, ``column_name``) and its new value, or, with neither,
    a correction in words. The value is typed text: kept in free_texts (by ``value_hash``),
    tied to the subject and erased with them, never in the audit chain.
    """

    __tablename__ = "dsar_corrections"
    table_name: Mapped[str | None] = mapped_column(String(100))
    column_name: Mapped[str | None] = mapped_column(String(100))
    value_hash: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    """A host application's key to the intake API; only its SHA-256 is kept."""

    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_by: Mapped[str | None] = mapped_column(String(255))
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    #: Unknown subjects this key asked about since ``unknown_since``, a one-minute window
    #: (compliance.dsar.intake): past a limit the key is refused until the window ends.
    unknown_subjects: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    unknown_since: Mapped[datetime | None]


class JobRun(Base):
    __tablename__ = "job_runs"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job: Mapped[str] = mapped_column(String(100), index=True)
    arguments: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    dry_run: Mapped[bool] = mapped_column(Boolean)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(20), default=JobRunStatus.RUNNING)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint(f"status IN ({sql_in(JobRunStatus)})", name="ck_job_runs_status"),
    )


class AuditEvent(Base):
    """Append-only and hash-chained: each hash covers the row and the previous hash."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(255), index=True)
    action: Mapped[str] = mapped_column(String(100), index=True)
    target_type: Mapped[str] = mapped_column(String(50))
    target_id: Mapped[str | None] = mapped_column(String(255))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class ErasureTask(Base):
    """One system's share of a deletion record or a DSAR request (added by migration 0007).

    The record is applied, or the request completed, only when each of its tasks is done
    (or skipped, for a system that holds only retained data). A webhook task keeps one
    idempotency key from creation on, so a resend after a crash is recognisably the same.
    """

    __tablename__ = "erasure_tasks"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    deletion_record_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("deletion_records.id", ondelete="CASCADE")
    )
    dsar_request_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("dsar_requests.id", ondelete="CASCADE")
    )
    system: Mapped[str] = mapped_column(String(100))
    system_kind: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(20))  # erasure | access
    status: Mapped[str] = mapped_column(String(20), default=TaskStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    #: What a webhook or a person needs to find the subject (id, email); cleared once done.
    subject: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    sent_at: Mapped[datetime | None]
    accepted_at: Mapped[datetime | None]
    done_at: Mapped[datetime | None]
    done_by: Mapped[str | None] = mapped_column(String(255))
    note: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: Where the system's part of an access export is kept (compliance.storage location).
    file_path: Mapped[str | None] = mapped_column(Text)
    #: What that part is called in the ZIP (a bucket's object name says nothing). Migration 0015.
    file_name: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (
        Index("uq_erasure_tasks_record", "deletion_record_id", "system", unique=True),
        # A request's system may get a second task (told a restriction ended): one per action.
        Index("uq_erasure_tasks_request", "dsar_request_id", "system", "action", unique=True),
        Index("ix_erasure_tasks_status", "status", "next_attempt_at"),
        CheckConstraint(
            f"status IN ({sql_in(TaskStatus)})",
            name="ck_erasure_tasks_status",
        ),
        CheckConstraint(
            "(deletion_record_id IS NULL) <> (dsar_request_id IS NULL)",
            name="ck_erasure_tasks_owner",
        ),
    )


# ---------------------------------------------------------------- added by migration 0013


class FreeText(Base):
    """A reason or note someone typed, kept outside the hash chain (compliance.audit.texts).

    The audit event holds ``hash`` (HMAC-SHA256 under ``salt`` and COMPLIANCE_HASH_KEY);
    erasing a subject deletes the texts tied to them, the salt with them, so the event still
    verifies and its hash can no longer be checked against a guess.
    """

    __tablename__ = "free_texts"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    hash: Mapped[str] = mapped_column(String(80), unique=True)
    salt: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FreeTextSubject(OfSubjectType, Base):
    """A subject a free text may be about (by kind and application key, as requests name
    them; the kind added by migration 0021)."""

    __tablename__ = "free_text_subjects"
    free_text_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("free_texts.id", ondelete="CASCADE"), primary_key=True
    )
    subject_id: Mapped[str] = mapped_column(String(255), primary_key=True, index=True)


# ---------------------------------------------------------------- added by migration 0018


class Suppression(Base):
    """A subject who objected (Art. 21): kept out of ``scope`` by every system, for good.

    It keeps no email or name: the subject's compliance profile and the keyed hash of the
    email they had (HMAC-SHA256 under COMPLIANCE_HASH_KEY), so it outlives the subject's
    erasure and an address imported again still matches it.
    """

    __tablename__ = "suppressions"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    compliance_profile_id: Mapped[int] = mapped_column(BigId, ForeignKey("compliance_profiles.id"))
    scope: Mapped[str] = mapped_column(String(50))
    email_hash: Mapped[str | None] = mapped_column(String(80), index=True)
    dsar_request_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("dsar_requests.id", ondelete="SET NULL")
    )
    recorded_by: Mapped[str] = mapped_column(String(255))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("uq_suppressions_profile_scope", "compliance_profile_id", "scope", unique=True),
    )


# ---------------------------------------------------------------- added by migration 0004


class LegalHold(Base):
    """A subject that must not be erased, whatever any bucket or request says, while active.

    Active: not lifted, and either open-ended or ``until`` still ahead. The subject is named
    by compliance profile only; placing and lifting are audited.
    """

    __tablename__ = "legal_holds"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    compliance_profile_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("compliance_profiles.id"), index=True
    )
    reason: Mapped[str] = mapped_column(Text)
    placed_by: Mapped[str] = mapped_column(String(255))
    placed_at: Mapped[datetime] = mapped_column(default=utcnow)
    until: Mapped[datetime | None]
    lifted_at: Mapped[datetime | None]
    lifted_by: Mapped[str | None] = mapped_column(String(255))
    lifted_reason: Mapped[str | None] = mapped_column(Text)
    # Added by migration 0018: a legal hold, or a restriction of processing (HoldKind) that
    # names the request it answers.
    kind: Mapped[str] = mapped_column(
        String(20), default=HoldKind.LEGAL, server_default=HoldKind.LEGAL.value
    )
    dsar_request_id: Mapped[int | None] = mapped_column(BigId)

    __table_args__ = (CheckConstraint(f"kind IN ({sql_in(HoldKind)})", name="ck_legal_holds_kind"),)


class ErasurePlan(Base):
    """An erasure plan (tables, actions, columns, links to the subject) kept by its hash, forever.

    Batches point at the plan their officer accepted; the decision ledger at the plan an
    erasure carried out, so ``replay-erasures`` redoes exactly that after a restore.
    """

    __tablename__ = "erasure_plans"
    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: ``{"steps", "subjects", "links"}``; before revision 0010_plan_links, the steps alone.
    plan: Mapped[Any] = mapped_column(JSON)
    #: The plan with its links: this plan's own hash, or, for a plan stored before links
    #: were recorded, the hash of the copy given the links in force at the upgrade. NULL:
    #: an old plan whose links are not recorded yet (see deletion.plans.record_missing_links).
    links_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DecisionLedger(Base):
    """What purge folds each removed record into: permanent, and no email or name.

    ``decision`` is ``erased`` | ``rejected`` (batch rejected) | ``excluded`` (kept out of an
    accepted batch). Rejections hold subjects back for the bucket's cool-off; erasures are
    what ``replay-erasures`` redoes after a backup restore.
    """

    __tablename__ = "decision_ledger"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    compliance_profile_id: Mapped[int] = mapped_column(BigId, ForeignKey("compliance_profiles.id"))
    bucket: Mapped[str] = mapped_column(String(100))
    decision: Mapped[str] = mapped_column(String(20))
    reviewer: Mapped[str | None] = mapped_column(String(255))
    decided_at: Mapped[datetime | None]
    applied_at: Mapped[datetime | None] = mapped_column(index=True)
    note: Mapped[str | None] = mapped_column(Text)
    plan_hash: Mapped[str | None] = mapped_column(String(64))
    deletion_record_id: Mapped[int | None] = mapped_column(BigId)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_decision_ledger_profile_bucket", "compliance_profile_id", "bucket"),
    )


class DeletionAggregate(Base):
    """Per bucket and week (Monday, UTC), the counts purge removed: figures never shrink."""

    __tablename__ = "deletion_aggregates"
    bucket: Mapped[str] = mapped_column(String(100), primary_key=True)
    week: Mapped[date] = mapped_column(Date, primary_key=True)
    records_erased: Mapped[int] = mapped_column(Integer, default=0)
    records_kept: Mapped[int] = mapped_column(Integer, default=0)
    batches_accepted: Mapped[int] = mapped_column(Integer, default=0)
    batches_rejected: Mapped[int] = mapped_column(Integer, default=0)


# ---------------------------------------------------------------- added by migration 0015


class UserExport(OfSubjectType, Base):
    """A support export (export-user-data) kept in the export store, and whose it is.

    A bucket's object names say nothing about their subject; this row is how cleanup and
    erasure find them. It goes with the file: after ``[retention.dsar_exports] days`` or the
    subject's erasure, whichever comes first.
    """

    __tablename__ = "user_exports"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(255), index=True)
    location: Mapped[str] = mapped_column(Text, unique=True)
    format: Mapped[str] = mapped_column(String(8))
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class ScanFinding(Base):
    """One column of personal data the last scan of its system found: counts and recogniser
    names only, never a sampled value (scan-personal-data --execute replaces a system's rows).

    ``status`` is the policy's answer when the scan ran; ``alerted_at`` when the ops channel
    was told of it as uncovered, so a finding is announced once, and again only if the
    alert failed.
    """

    __tablename__ = "scan_findings"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    system: Mapped[str] = mapped_column(String(100), index=True)
    table_name: Mapped[str] = mapped_column(String(255))
    column_name: Mapped[str] = mapped_column(String(255))
    category: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20))
    #: The recognisers that said so, comma-separated ("column name,email-validator").
    recognisers: Mapped[str] = mapped_column(String(255))
    #: Non-empty values sampled, and how many the recognisers matched.
    sampled: Mapped[int] = mapped_column(Integer)
    matched: Mapped[int] = mapped_column(Integer)
    scanned_at: Mapped[datetime] = mapped_column(default=utcnow)
    alerted_at: Mapped[datetime | None]

    __table_args__ = (
        CheckConstraint(f"status IN ({sql_in(FindingStatus)})", name="ck_scan_findings_status"),
    )
