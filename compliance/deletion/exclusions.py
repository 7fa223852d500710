"""Keeping records out of a pending batch: one by one with a note (and, if asked, a legal hold
on their subject), every record at once as its own confirmed decision, or put back until the
batch is decided. The decision itself is ``compliance.deletion.batches``'.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import (
    select,
    update,
)
from sqlalchemy.orm import Session

from compliance.audit.chain import record_event
from compliance.deletion.holds import add_hold, plan_place_hold
from compliance.deletion.review import (
    already_reviewed,
    check_exclusions,
    check_unchanged,
    explained_exclusions,
    get_batch,
    mark_excluded,
)
from compliance.errors import InvalidInput
from compliance.free_text import free_text
from compliance.policy.model import Policy
from compliance.roles import COMPLIANCE_OFFICER, Identity, require
from compliance.store.models import (
    ComplianceProfile,
    DeletionRecord,
    utcnow,
)
from compliance.store.queries import record_in
from compliance.store.states import BatchStatus, RecordState


@dataclass(frozen=True)
class Exclusion:
    excluded: int
    #: Legal holds placed on the excluded records' subjects, with the exclusion.
    holds: list[int]


def exclude_records(
    session: Session,
    batch_id: int,
    exclude: Mapping[int, str],
    *,
    actor: Identity,
    hold: bool = False,
) -> Exclusion:
    """Keep single records out of a pending batch's deletion, each with the reviewer's note.

    An exclusion keeps the record out of this batch only; with ``hold`` its subject also gets
    a legal hold, the note as its reason, which keeps it out of every bucket. Both commit
    together or neither does: every hold is planned (and may be refused) before anything
    is written, so a refused hold leaves no exclusion behind.
    """
    by = require(actor, COMPLIANCE_OFFICER, to="exclude records from deletion batches")
    exclude = explained_exclusions(exclude)
    # Planned first: planning a hold ends its read transaction, and the checks below must
    # share one with the writes.
    plans = (
        [
            plan_place_hold(
                session, subject_id=subject_id, reason=exclude[rid], by=actor, subject_type=kind
            )
            for rid, kind, subject_id in _subjects(session, exclude)
        ]
        if hold
        else []
    )
    # Locked: a decision taken meanwhile waits for this exclusion, or this one sees it.
    batch = get_batch(session, batch_id, lock=True)
    if batch.reviewed_status != BatchStatus.PENDING:
        raise already_reviewed(batch)
    check_exclusions(session, batch, exclude)
    now = utcnow()
    mark_excluded(session, exclude, now)
    record_event(
        session,
        actor=by,
        action="deletion_records.excluded",
        target_type="deletion_batch",
        target_id=batch_id,
        details={"record_ids": sorted(exclude)},
    )
    holds = [add_hold(session, plan, now=now).id for plan in plans]
    session.commit()
    return Exclusion(len(exclude), holds)


def exclude_all_records(
    session: Session,
    batch_id: int,
    note: str,
    *,
    actor: Identity,
    seen_version: str,
    policy: Policy | None = None,
    hold: bool = False,
) -> Exclusion:
    """Keep every record of a pending batch still awaiting the decision: an explicit action.

    Excluding all is not a bigger exclusion but another decision (the batch then erases
    nothing), so it is its own call, made after a confirmation naming the batch's records:
    ``seen_version`` is the batch's version that confirmation showed (read with the same
    ``policy``), refused if it changed. With ``hold`` every one of their subjects also gets a
    legal hold, the note as its reason, committed with the exclusions or not at all.
    """
    require(actor, COMPLIANCE_OFFICER, to="exclude records from deletion batches")
    text = free_text(note, field="exclude")
    if text is None:
        raise InvalidInput("{field}: say why every record of the batch is kept", field="exclude")
    # Holds are planned first (planning ends its read transaction), for the records the
    # officer saw; the version checked under the lock below proves they are still those.
    plans = (
        [
            plan_place_hold(
                session, subject_id=subject_id, reason=text, by=actor, subject_type=kind
            )
            for _, kind, subject_id in _subjects(session, _awaiting(session, batch_id))
        ]
        if hold
        else []
    )
    batch = get_batch(session, batch_id, lock=True)
    if batch.reviewed_status != BatchStatus.PENDING:
        raise already_reviewed(batch)
    check_unchanged(session, batch_id, seen_version, policy=policy)
    waiting = _awaiting(session, batch_id)
    if not waiting:
        raise InvalidInput(f"every record of batch {batch_id} is already excluded")
    now = utcnow()
    mark_excluded(session, dict.fromkeys(waiting, text), now)
    record_event(
        session,
        actor=actor.email,
        action="deletion_records.excluded",
        target_type="deletion_batch",
        target_id=batch_id,
        details={"record_ids": list(waiting), "records": len(waiting), "all_records": True},
    )
    holds = [add_hold(session, plan, now=now).id for plan in plans]
    session.commit()
    return Exclusion(len(waiting), holds)


def _awaiting(session: Session, batch_id: int) -> list[int]:
    """The batch's records still awaiting the decision, by id."""
    return list(
        session.scalars(
            select(DeletionRecord.id)
            .where(
                DeletionRecord.deletion_batch_id == batch_id,
                record_in(RecordState.AWAITING_REVIEW),
            )
            .order_by(DeletionRecord.id)
        )
    )


def _subjects(session: Session, record_ids: Iterable[int]) -> list[tuple[int, str, str]]:
    """(record id, kind of subject, subject key) for these records, by record id."""
    return [
        (rid, kind, subject_id)
        for rid, kind, subject_id in session.execute(
            select(DeletionRecord.id, ComplianceProfile.subject_type, ComplianceProfile.subject_id)
            .join(ComplianceProfile, ComplianceProfile.id == DeletionRecord.compliance_profile_id)
            .where(DeletionRecord.id.in_(list(record_ids)))
            .order_by(DeletionRecord.id)
        )
    ]


def include_records(
    session: Session, batch_id: int, record_ids: list[int], *, actor: Identity
) -> int:
    """Undo exclusions in a still pending batch: the records go back to awaiting the decision.

    An exclusion is a draft of the officer's decision until the batch is decided; after
    that it is part of the decision and stays.
    """
    by = require(actor, COMPLIANCE_OFFICER, to="put excluded records back into deletion batches")
    batch = get_batch(session, batch_id)
    if batch.reviewed_status != BatchStatus.PENDING:
        raise already_reviewed(batch)
    wanted = sorted(set(record_ids))
    if not wanted:
        raise InvalidInput("choose at least one excluded record to put back")
    excluded = set(
        session.scalars(
            select(DeletionRecord.id).where(
                DeletionRecord.deletion_batch_id == batch_id,
                DeletionRecord.id.in_(wanted),
                record_in(RecordState.EXCLUDED),
            )
        )
    )
    strangers = [r for r in wanted if r not in excluded]
    if strangers:
        raise InvalidInput(f"record {strangers[0]} is not an excluded record of batch {batch_id}")
    session.execute(
        update(DeletionRecord)
        .where(DeletionRecord.id.in_(wanted))
        .values(
            accepted_for_deletion=None,
            is_manually_reviewed=False,
            review_note=None,
            updated_at=utcnow(),
        )
    )
    record_event(
        session,
        actor=by,
        action="deletion_records.included",
        target_type="deletion_batch",
        target_id=batch_id,
        details={"record_ids": wanted},
    )
    session.commit()
    return len(wanted)
