"""Every lifecycle of the compliance database, and the moves each allows, in one place.

Status columns hold these values (migrations 0003_states and 0007_systems check them);
a deletion record's and a delivery's state are derived from their columns, so their
enums name the states and ``compliance.store.queries`` holds the one SQL spelling of each.
Being ``StrEnum``s, the members compare equal to the strings stored and shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from compliance.errors import Conflict

#: The kind of data subject a policy with one plain ``[subjects]`` section declares; rows
#: written before kinds existed (migration 0020) are of it.
DEFAULT_SUBJECT_TYPE = "default"


class BatchStatus(StrEnum):
    """A deletion batch: an officer accepts or rejects it once."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class RecordState(StrEnum):
    """A deletion record, from found due to erased (derived from its columns)."""

    UNBATCHED = "unbatched"  # not in a batch yet, no decision
    AWAITING_REVIEW = "awaiting_review"  # in a pending batch
    EXCLUDED = "excluded"  # kept: excluded by an officer or its batch rejected
    PENDING_APPLY = "pending_apply"  # accepted, apply-deletions has not run on it yet
    FAILED = "failed"  # accepted, the last apply failed; the next run retries it
    APPLIED = "applied"  # erased


class DsarStatus(StrEnum):
    """A data subject's access or erasure request."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    PROCESSING = "processing"
    READY = "ready"  # an access export is built; the subject has not been sent its link yet
    COMPLETED = "completed"  # access: the link email was accepted for delivery
    FAILED = "failed"


class DsarKind(StrEnum):
    """What a data subject asks for (GDPR Art. 15, 16, 17, 18, 20, 21)."""

    ACCESS = "access"
    ERASURE = "erasure"
    OBJECTION = "objection"  # a suppression every webhook and manual system is told about
    RESTRICTION = "restriction"  # a hold while it lasts; systems told; lifted by a decision
    RECTIFICATION = "rectification"  # corrections: an UPDATE per table, each system a task
    PORTABILITY = "portability"  # an access export of the data the subject provided


#: Kinds answered by telling systems: a task per system, completed once every one confirmed.
TOLD_KINDS: tuple[DsarKind, ...] = (
    DsarKind.OBJECTION,
    DsarKind.RESTRICTION,
    DsarKind.RECTIFICATION,
)

#: Kinds answered by an export the subject downloads (built, then ready, then delivered).
EXPORT_KINDS: tuple[DsarKind, ...] = (DsarKind.ACCESS, DsarKind.PORTABILITY)


class HoldKind(StrEnum):
    """What keeps a subject's data whatever erases it (``legal_holds.kind``)."""

    LEGAL = "legal"  # litigation, an authority: placed and lifted by an officer
    RESTRICTION = "restriction"  # a restriction request (Art. 18); lifted after telling them


class DeliveryState(StrEnum):
    """A one-time download of an export (derived from its columns)."""

    ACTIVE = "active"
    LOCKED = "locked"  # too many wrong codes
    DOWNLOADED = "downloaded"  # used up
    EXPIRED = "expired"


class JobRunStatus(StrEnum):
    """One run of a job as job_runs records it."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the job ran and reported failure (exit 1)
    SKIPPED = "skipped"  # another run held the lock
    REFUSED = "refused"  # bad input or configuration (exit 2)
    CRASHED = "crashed"  # a bug, or killed before it could record its end


class TaskStatus(StrEnum):
    """One system's share of a deletion record or a DSAR request (``erasure_tasks.status``)."""

    PENDING = "pending"  # to do: by the next run (SQL, webhook after its backoff) or a person
    SENT = "sent"  # a webhook request left; or the service accepted it and finishes later
    DONE = "done"
    FAILED = "failed"  # the last SQL attempt failed, or a webhook ran out of attempts
    SKIPPED = "skipped"  # the system holds only data kept under a legal obligation


class NoticeStatus(StrEnum):
    """One notice to a data subject (``dsar_notices.status``); every attempt is kept."""

    PENDING = "pending"  # stored, the first attempt to send it not yet made
    SENT = "sent"
    FAILED = "failed"  # the mail server refused it; an officer may send it again


class LedgerDecision(StrEnum):
    """What the decision ledger keeps of a purged record (``decision_ledger.decision``)."""

    ERASED = "erased"
    REJECTED = "rejected"  # the whole batch was rejected
    EXCLUDED = "excluded"  # kept out of a batch that was accepted


class AlertStatus(StrEnum):
    """One Slack alert in a run of an alert job (not stored; the audit log keeps posts)."""

    DUE = "due"
    SKIPPED = "skipped"
    POSTED = "posted"
    FAILED = "failed"


class CleanupStatus(StrEnum):
    """One retention category in a run of retention-cleanup."""

    WOULD_DELETE = "would delete"  # the dry run's answer, and the state before deleting
    DELETED = "deleted"
    SKIPPED = "skipped"
    FAILED = "failed"


class FindingStatus(StrEnum):
    """What the policy does with a column of personal data the scan found
    (``scan_findings.status``): a classification at the time of the scan, not a lifecycle."""

    UNCOVERED = "uncovered"  # in a table the data map does not name: erasure never reaches it
    LEFT_AS_IS = "left_as_is"  # in an anonymized table, but neither anonymized nor deleted
    RETAINED = "retained"  # kept under retain, with the table's legal basis
    DELETED = "deleted"  # its table's rows are deleted on erasure
    ANONYMIZED = "anonymized"
    ACCEPTED = "accepted"  # an officer accepted it in [scan] accept, with a reason


#: What the policy handles: erased, kept with a legal basis, or knowingly accepted.
COVERED_FINDINGS = frozenset(
    {
        FindingStatus.DELETED,
        FindingStatus.ANONYMIZED,
        FindingStatus.RETAINED,
        FindingStatus.ACCEPTED,
    }
)


TRANSITIONS: Mapping[type[StrEnum], Mapping[StrEnum, frozenset[StrEnum]]] = {
    BatchStatus: {
        BatchStatus.PENDING: frozenset({BatchStatus.ACCEPTED, BatchStatus.REJECTED}),
    },
    RecordState: {
        RecordState.UNBATCHED: frozenset(
            # An erasure request's record is accepted as it is created: its approval was the review.
            {RecordState.AWAITING_REVIEW, RecordState.PENDING_APPLY}
        ),
        RecordState.AWAITING_REVIEW: frozenset({RecordState.EXCLUDED, RecordState.PENDING_APPLY}),
        RecordState.PENDING_APPLY: frozenset({RecordState.APPLIED, RecordState.FAILED}),
        RecordState.FAILED: frozenset({RecordState.APPLIED, RecordState.FAILED}),
    },
    DsarStatus: {
        DsarStatus.PENDING: frozenset({DsarStatus.APPROVED, DsarStatus.REJECTED}),
        DsarStatus.APPROVED: frozenset({DsarStatus.PROCESSING}),
        # A claim whose worker died is claimed again once its lease runs out; a failed
        # attempt, an export store outage or a run stopping early puts it back in the queue.
        DsarStatus.PROCESSING: frozenset(
            {
                DsarStatus.PROCESSING,
                DsarStatus.APPROVED,
                DsarStatus.READY,
                DsarStatus.COMPLETED,
                DsarStatus.FAILED,
            }
        ),
        # Delivered: the mail server accepted the link email (a failed send stays ready).
        DsarStatus.READY: frozenset({DsarStatus.COMPLETED}),
        DsarStatus.FAILED: frozenset({DsarStatus.APPROVED}),  # retried by an officer
    },
    DeliveryState: {
        DeliveryState.ACTIVE: frozenset(
            {DeliveryState.LOCKED, DeliveryState.DOWNLOADED, DeliveryState.EXPIRED}
        ),
    },
    TaskStatus: {
        TaskStatus.PENDING: frozenset({TaskStatus.SENT, TaskStatus.DONE, TaskStatus.FAILED}),
        # Resent after a lost answer, polled while accepted, or back to pending for a retry.
        TaskStatus.SENT: frozenset(
            {TaskStatus.SENT, TaskStatus.PENDING, TaskStatus.DONE, TaskStatus.FAILED}
        ),
        # Retried by an officer (webhook, manual), or by the next run (SQL); a late callback.
        TaskStatus.FAILED: frozenset({TaskStatus.PENDING, TaskStatus.DONE, TaskStatus.FAILED}),
    },
    NoticeStatus: {
        NoticeStatus.PENDING: frozenset({NoticeStatus.SENT, NoticeStatus.FAILED}),
        NoticeStatus.FAILED: frozenset({NoticeStatus.SENT, NoticeStatus.FAILED}),  # sent again
    },
    LedgerDecision: {},  # permanent: each decision is final
    JobRunStatus: {
        JobRunStatus.RUNNING: frozenset(set(JobRunStatus) - {JobRunStatus.RUNNING}),
    },
    AlertStatus: {
        AlertStatus.DUE: frozenset({AlertStatus.SKIPPED, AlertStatus.POSTED, AlertStatus.FAILED}),
    },
    CleanupStatus: {
        CleanupStatus.WOULD_DELETE: frozenset({CleanupStatus.DELETED, CleanupStatus.FAILED}),
    },
    FindingStatus: {},  # each scan classifies afresh; nothing moves from one to another
}

# Requests still owed an answer: they count against the deadline and block a duplicate.
# A ready export is still owed: the subject has nothing until the link is sent.
OPEN_DSAR_STATUSES: tuple[DsarStatus, ...] = (
    DsarStatus.PENDING,
    DsarStatus.APPROVED,
    DsarStatus.PROCESSING,
    DsarStatus.READY,
    DsarStatus.FAILED,
)


def can_move(current: StrEnum, new: StrEnum) -> bool:
    """Whether a lifecycle allows ``current`` to become ``new``."""
    return new in TRANSITIONS[type(current)].get(current, frozenset())


def move(row: Any, new: StrEnum) -> None:
    """Set ``row.status`` to ``new`` if its lifecycle allows the move from where it stands.

    Every status change of a row goes through here, so TRANSITIONS is the whole truth of what
    can happen; a move it does not list is refused before anything is written (a lost race,
    or a bug) instead of leaving a request or task somewhere no page expects.
    """
    current = type(new)(row.status)
    if not can_move(current, new):
        name = getattr(row, "reference", None) or f"{row.__tablename__} {row.id}"
        raise Conflict(f"{name} is {current}; it cannot become {new}")
    row.status = new


def is_final(state: StrEnum) -> bool:
    """No move leads out of it (completed, rejected, applied, succeeded, ...)."""
    return not TRANSITIONS[type(state)].get(state)


def sql_in(values: type[StrEnum] | tuple[StrEnum, ...]) -> str:
    """``'a', 'b'`` for a CHECK constraint or a partial index written as SQL text."""
    return ", ".join(f"'{v.value}'" for v in values)
