"""What a loaded policy is: its settings, tables, buckets and rules as frozen dataclasses.

Parsing and checking them is ``compliance.policy.loader``'s; everything else reads these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from compliance.errors import InvalidInput, NotFound, quoted
from compliance.policy.exports import ExportSettings
from compliance.policy.jurisdictions import (
    DEFAULT_JURISDICTION,
    GDPR,
    Jurisdiction,
)
from compliance.policy.strategies import (
    ErasureAction,
)
from compliance.policy.systems import (
    APP_SYSTEM,
    System,
)
from compliance.store.states import DEFAULT_SUBJECT_TYPE

DEFAULT_CONFIG = "compliance.toml"
DSAR_ERASURE_BUCKET = "dsar_erasure"
#: Days a subject whose record was rejected is not proposed again in that bucket.
DEFAULT_REJECTION_COOLOFF_DAYS = 90
#: Days of the month a bucket's unreviewed batches are announced on, unless it says.
DEFAULT_ALERT_DAYS_OF_MONTH = (1,)
#: Days delivered DSAR export files are kept ([retention.dsar_exports] days).
DEFAULT_DSAR_EXPORT_DAYS = 30
#: Days job_runs rows are kept ([retention.job_runs] days).
DEFAULT_JOB_RUNS_DAYS = 180
DEFAULT_DATABASE_URL = "sqlite:///var/compliance.db"
DEFAULT_APP_DATABASE_URL = "sqlite:///var/demo_app.db"
DEFAULT_EXPORT_DIR = "var/exports"


@dataclass(frozen=True)
class Via:
    """``column`` points at ``parent_column`` of the parent ``table`` (by default its key)."""

    table: str
    column: str
    parent_column: str | None = None


@dataclass(frozen=True)
class MappedTable:
    """One entry of the data map: a table holding personal data and what erasure does to it."""

    name: str
    on_erasure: ErasureAction
    subject_column: str | None = None
    via: Via | None = None
    anonymize: Mapping[str, str] = field(default_factory=dict)
    #: Per anonymized column, the options its strategy was given (``redact``'s ``text``).
    anonymize_options: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    export_exclude: tuple[str, ...] = ()
    legal_basis: str | None = None
    #: The SQL system (database) holding the table; the application database by default.
    system: str = APP_SYSTEM
    #: Data the subject provided: what a portability request exports (GDPR Art. 20).
    portable: bool = False
    #: The kind of data subject whose data this is ([subjects.NAME]); a via table inherits it.
    subject: str = DEFAULT_SUBJECT_TYPE


@dataclass(frozen=True)
class AgeRule:
    """Subjects whose newest ``timestamp`` in ``table`` is older than ``older_than_days``."""

    table: str
    timestamp: str
    older_than_days: int


@dataclass(frozen=True)
class SqlRule:
    """A read-only SELECT returning subject keys."""

    sql: str
    #: What the query means, in words an officer reviewing a batch understands.
    description: str | None = None


Rule = AgeRule | SqlRule


@dataclass(frozen=True)
class Bucket:
    name: str
    description: str
    tables: tuple[str, ...]
    rules: tuple[Rule, ...]
    ops_channel: str | None = None
    ops_alert_days_of_month: tuple[int, ...] = ()
    ops_handle: str | None = None
    #: Days between finding a subject due and the earliest moment its data may be erased.
    grace_days: int = 0
    #: Days applied or rejected bookkeeping is kept before purge-compliance-data removes it.
    purge_after_days: int = 0
    #: Days a rejected (or excluded) subject is not proposed again in this bucket.
    rejection_cooloff_days: int = DEFAULT_REJECTION_COOLOFF_DAYS
    #: Webhook and manual systems an accepted deletion also reaches (SQL ones follow tables).
    systems: tuple[str, ...] = ()
    #: Columns of the [subjects] table shown beside each record under review, read from the
    #: application database when the page opens and never copied into the compliance database.
    review_columns: tuple[str, ...] = ()
    #: Art. 30(1)(b)-(e): why the data is processed, whose it is, who receives it, and
    #: transfers outside the EU. Optional; records-of-processing shows what is missing.
    purpose: str | None = None
    data_subjects: tuple[str, ...] = ()
    recipients: tuple[str, ...] = ()
    transfers: tuple[str, ...] = ()
    #: The kind of data subject the bucket erases: that of its tables (one kind per bucket).
    subject: str = DEFAULT_SUBJECT_TYPE


@dataclass(frozen=True)
class RetentionEntry:
    name: str
    table: str
    timestamp: str
    days: int


@dataclass(frozen=True)
class Subjects:
    """One kind of data subject: the table listing them, its key, and how to reach them."""

    table: str = "users"
    key: str = "id"
    email: str | None = "email"
    #: The subjects table's column whose value picks a jurisdiction by its ``countries``.
    jurisdiction_column: str | None = None
    #: Its name in [subjects.NAME]; a single plain [subjects] section is ``default``.
    name: str = DEFAULT_SUBJECT_TYPE


def subjects_section(subjects: Subjects) -> str:
    """Where ``subjects`` is declared in the policy file, for messages naming its keys."""
    if subjects.name == DEFAULT_SUBJECT_TYPE:
        return "subjects"
    return f"subjects.{subjects.name}"


@dataclass(frozen=True)
class SlackSettings:
    production: bool = False
    test_channel: str | None = None
    dashboard_url: str = "http://localhost:8501"
    dsar_channel: str | None = None


@dataclass(frozen=True)
class DashboardSettings:
    demo_mode: bool = False
    #: The header an authenticating proxy names the signed-in person in.
    identity_header: str = "X-Forwarded-Email"
    #: The header the proxy proves itself with: the identity header counts only beside it.
    proxy_secret_header: str = "X-Privacy-Desk-Proxy-Secret"
    #: The environment variable holding that shared secret; unset means header sign-in is off.
    proxy_secret_env: str = "COMPLIANCE_PROXY_SECRET"


DEFAULT_IDENTITY_METHODS = (
    "signed_in_account",
    "email_confirmation",
    "id_document",
    "security_questions",
    "other",
)


@dataclass(frozen=True)
class ReviewSettings:
    #: Nobody approves a DSAR request they logged themselves (default: on outside demo mode).
    four_eyes: bool = True


@dataclass(frozen=True)
class DsarSettings:
    erasure_review: bool = True
    #: Webhook and manual systems erasure and access requests reach (default: all declared).
    systems: tuple[str, ...] | None = None
    # Support's "Export now" waits for an officer's approval unless this is false.
    access_review: bool = True
    # How a requester's identity may be checked; a request names one of these plus a note.
    identity_methods: tuple[str, ...] = DEFAULT_IDENTITY_METHODS
    # Notice templates a deployment overrides file by file; None: only the shipped ones.
    templates_dir: Path | None = None
    # Processing attempts (with exponential backoff) before a request shows as failed.
    max_attempts: int = 3
    # process-dsar-requests emails the link and code once an access export is built.
    auto_deliver: bool = True
    # The law a request falls under when intake names none and its subject's country does not.
    default_jurisdiction: str = DEFAULT_JURISDICTION


@dataclass(frozen=True)
class AuditSettings:
    #: Append-only file the chain's head is anchored to (anchor-audit-log); None: not anchored.
    anchor_file: Path | None = None
    #: Slack channel anchors are posted to (default: [slack] dsar_channel).
    ops_channel: str | None = None


@dataclass(frozen=True)
class ScanSettings:
    """``[scan]``: what scan-personal-data may leave uncovered, and whom it tells."""

    #: ``"system.table.column"`` -> why an officer accepted it as not personal, or as
    #: personal data the policy rightly leaves alone; still listed as accepted.
    accept: Mapping[str, str] = field(default_factory=dict)
    #: Slack channel told about new uncovered personal data (default: [slack] dsar_channel).
    ops_channel: str | None = None


@dataclass(frozen=True)
class RecordsSettings:
    """``[records]``: the Art. 30(1)(a) and (g) parts of the record of processing."""

    controller: str | None = None
    dpo_contact: str | None = None
    security_measures: tuple[str, ...] = ()


@dataclass(frozen=True)
class SmtpSettings:
    host: str = "localhost"
    port: int = 25
    sender: str = "privacy@example.com"
    username: str | None = None
    starttls: bool = False
    #: A folder to write each message into as an .eml file instead of sending it (the demo's
    #: outbox: no mail server needed, and the Outbox page lists what was "sent").
    outbox: Path | None = None
    #: Whether the policy file has an [smtp] section: without one nothing is mailed by a job.
    configured: bool = False


@dataclass(frozen=True)
class Policy:
    path: Path | None
    database_url: str
    app_database_url: str
    export_dir: Path
    #: Every kind of data subject by name, in policy order ([subjects.NAME]).
    subject_types: Mapping[str, Subjects]
    tables: Mapping[str, MappedTable]
    buckets: Mapping[str, Bucket]
    retention: Mapping[str, RetentionEntry]
    slack: SlackSettings = SlackSettings()
    roles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    dashboard: DashboardSettings = DashboardSettings()
    review: ReviewSettings = ReviewSettings()
    dsar: DsarSettings = DsarSettings()
    smtp: SmtpSettings = SmtpSettings()
    dsar_export_days: int = DEFAULT_DSAR_EXPORT_DAYS
    #: Days job_runs rows are kept ([retention.job_runs] days); retention-cleanup purges older.
    job_runs_days: int = DEFAULT_JOB_RUNS_DAYS
    audit: AuditSettings = AuditSettings()
    #: Every system by name, the application database (``app_database``) included.
    systems: Mapping[str, System] = field(default_factory=dict)
    #: Where export files live ([exports] storage: the folder export_dir, or a bucket).
    exports: ExportSettings = field(default_factory=ExportSettings)
    scan: ScanSettings = ScanSettings()
    records: RecordsSettings = RecordsSettings()
    #: Every jurisdiction by name, the built-in ``gdpr`` included ([jurisdictions.NAME]).
    jurisdictions: Mapping[str, Jurisdiction] = field(
        default_factory=lambda: {DEFAULT_JURISDICTION: GDPR}
    )

    def jurisdiction(self, name: str) -> Jurisdiction:
        """The declared jurisdiction ``name``; InvalidInput naming the known ones otherwise."""
        try:
            return self.jurisdictions[name]
        except KeyError:
            known = ", ".join(sorted(self.jurisdictions))
            raise InvalidInput(
                f"{{field}} must be one of {known}, got {quoted(name)}", field="jurisdiction"
            ) from None

    def subject_type(self, name: str) -> Subjects:
        """The declared kind of data subject ``name``; InvalidInput naming the known ones."""
        try:
            return self.subject_types[name]
        except KeyError:
            known = ", ".join(self.subject_types)
            raise InvalidInput(
                f"{{field}} must be one of {known}, got {quoted(name)}", field="subject_type"
            ) from None

    def subject_kind(self, name: str | None = None) -> Subjects:
        """The kind of data subject ``name``; when None, the only one the policy declares.

        With several kinds, None is refused in domain words: whoever asks must say which,
        never be given the first one and act on the wrong person.
        """
        if name is not None:
            return self.subject_type(name)
        if len(self.subject_types) == 1:
            return next(iter(self.subject_types.values()))
        known = ", ".join(self.subject_types)
        raise InvalidInput(
            f"{{field}} is missing: this desk serves several kinds of data subject ({known}); "
            "say which",
            field="subject_type",
        )

    @property
    def subjects(self) -> Subjects:
        """The kind of data subject of a policy that declares one (see ``subject_kind``)."""
        return self.subject_kind()

    @property
    def multiple_subject_types(self) -> bool:
        return len(self.subject_types) > 1

    def erasure_bucket_name(self, subject_type: str) -> str:
        """The bucket erasure requests about ``subject_type`` are recorded in.

        A policy with one kind of subject keeps the name ``dsar_erasure``; with several,
        each kind has its own (``dsar_erasure_customers``), since a bucket erases one kind.
        """
        if subject_type == DEFAULT_SUBJECT_TYPE:
            return DSAR_ERASURE_BUCKET
        return f"{DSAR_ERASURE_BUCKET}_{subject_type}"

    @property
    def erasure_buckets(self) -> dict[str, str]:
        """Each erasure-request bucket's name -> the kind of data subject it erases."""
        return {self.erasure_bucket_name(t): t for t in self.subject_types}

    def is_erasure_bucket(self, name: str) -> bool:
        return name in self.erasure_buckets

    def bucket(self, name: str) -> Bucket:
        if name in self.erasure_buckets:
            return self.erasure_bucket(self.erasure_buckets[name])
        try:
            return self.buckets[name]
        except KeyError:
            known = ", ".join(sorted([*self.buckets, *self.erasure_buckets]))
            raise NotFound(f"unknown bucket '{name}' (known: {known})") from None

    def subject_payload(self, kind: str, key: str, email: str | None) -> dict[str, str | None]:
        """Who a task is about, as its webhook or person is told: the key and the email, and
        where the desk serves several kinds of data subject, the kind (``type``): customer 5
        is not employee 5, and a system holding both must know which to erase or export."""
        payload: dict[str, str | None] = {"id": key, "email": email}
        if self.multiple_subject_types:
            payload["type"] = kind
        return payload

    def bucket_subject(self, name: str) -> str | None:
        """The kind of data subject bucket ``name`` erases; None for a bucket not (or no
        longer) in the policy."""
        if name in self.erasure_buckets:
            return self.erasure_buckets[name]
        found = self.buckets.get(name)
        return None if found is None else found.subject

    def erasure_bucket(self, subject_type: str) -> Bucket:
        """Erasure requests erase every mapped table of their kind of subject that is not
        kept under ``retain``."""
        return Bucket(
            name=self.erasure_bucket_name(subject_type),
            description="Erasure requests from data subjects (GDPR Art. 17)",
            tables=tuple(
                n
                for n, t in self.tables.items()
                if t.on_erasure != ErasureAction.RETAIN and t.subject == subject_type
            ),
            rules=(),
            ops_channel=self.slack.dsar_channel,
            # A data subject who asks again is heard again: no cool-off for requests.
            rejection_cooloff_days=0,
            systems=self.dsar_systems,
            subject=subject_type,
        )

    @property
    def subject_erasing_buckets(self) -> tuple[str, ...]:
        """The buckets that reach their subjects table itself (a bucket never names a
        ``retain`` table): a subject erased in one is erased, as an erasure request's
        subject is. A bucket that trims only some of their data (old tickets, say) leaves
        them a subject."""
        return tuple(
            n for n, b in self.buckets.items() if self.subject_types[b.subject].table in b.tables
        )

    @property
    def dsar_systems(self) -> tuple[str, ...]:
        """The webhook and manual systems requests reach: [dsar] systems, else all of them."""
        if self.dsar.systems is not None:
            return self.dsar.systems
        return tuple(n for n, s in self.systems.items() if not s.is_sql)

    def system(self, name: str) -> System:
        try:
            return self.systems[name]
        except KeyError:
            raise NotFound(f"unknown system '{name}' (known: {', '.join(self.systems)})") from None

    def system_of(self, table: str) -> str:
        return self.tables[table].system

    def bucket_systems(self, bucket: Bucket) -> tuple[str, ...]:
        """Every system an accepted deletion of ``bucket`` reaches: SQL ones first, in policy order.

        An SQL system counts when one of the bucket's tables, or a table reached through
        them by ``via``, lives there and is not retained.
        """
        names = set(bucket.tables)
        for name, table in self.tables.items():
            current = table
            while current.via is not None:
                if current.via.table in names:
                    names.add(name)
                    break
                current = self.tables[current.via.table]
        erased = {
            self.tables[n].system
            for n in names
            if self.tables[n].on_erasure != ErasureAction.RETAIN
        }
        sql = [n for n, s in self.systems.items() if s.is_sql and n in erased]
        return (*sql, *bucket.systems)

    def retained_only_systems(self) -> tuple[str, ...]:
        """SQL systems whose mapped tables are all retained: an erasure skips them, by law."""
        out = []
        for name, system in self.systems.items():
            held = [t for t in self.tables.values() if t.system == name]
            if system.is_sql and held and all(t.on_erasure == ErasureAction.RETAIN for t in held):
                out.append(name)
        return tuple(out)

    @property
    def retained_tables(self) -> frozenset[str]:
        return frozenset(n for n, t in self.tables.items() if t.on_erasure == ErasureAction.RETAIN)
