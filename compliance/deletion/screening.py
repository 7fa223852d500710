"""What erasing one bucket means in a run (``BucketWork``: its plans, tasks and the plan in
force), and what stops a claimed record before anything of it is erased: a legal hold, an
accepted plan narrower than the policy's, an open access request, a known foreign-key
block. ``apply`` screens every chunk with it and stores the refusals."""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import update
from sqlalchemy.orm import Session

from compliance.deletion.holds import awaiting_access_export, held_profiles
from compliance.deletion.plans import (
    PlanDocument,
    plan_changes,
    plan_document,
    plan_hash,
    refusal,
    store_plan,
)
from compliance.policy.cascades import Block
from compliance.policy.datamap import DataMap, TableAction
from compliance.policy.model import Bucket
from compliance.policy.systems import APP_SYSTEM, SystemKind
from compliance.store.models import DeletionRecord
from compliance.store.sql import among_ids
from compliance.store.states import TaskStatus
from compliance.systems import tasks as system_tasks

# Subjects per chunk: large enough that the bookkeeping per chunk (claim, mark applied,


class Claimed(NamedTuple):
    """One claimed record as the chunk's screening reads it, many times per record.

    Plain tuples: attribute access on SQLAlchemy's Row cost more than the screening itself.
    """

    id: int
    subject_id: str
    compliance_profile_id: int
    accepted_plan_hash: str | None
    blocked_plan_hash: str | None


@dataclass
class BucketWork:
    """What erasing one bucket means, worked out once per run rather than once per chunk."""

    bucket: Bucket
    plans: dict[str, list[TableAction]]
    specs: list[system_tasks.TaskSpec]
    #: Webhook and manual systems still to do: the chunk needs its subjects' details.
    other: list[system_tasks.TaskSpec]
    current: PlanDocument
    current_hash: str
    blocks: list[Block]
    #: Accepted plans seen so far, by hash, loaded as chunks name them.
    accepted: dict[str, PlanDocument] = field(default_factory=dict)

    @classmethod
    def of(cls, datamap: DataMap, name: str) -> BucketWork:
        policy = datamap.policy
        bucket = policy.bucket(name)
        plans = datamap.plans_by_system(bucket.tables)
        specs = system_tasks.record_task_specs(policy, bucket)
        current = plan_document(policy, name)
        return cls(
            bucket=bucket,
            plans=plans,
            specs=specs,
            other=[s for s in specs if s.kind != SystemKind.SQL and s.status == TaskStatus.PENDING],
            current=current,
            current_hash=plan_hash(current),
            blocks=datamap.plan_blocks(plans.get(APP_SYSTEM, [])),
        )


def blocked_records(
    datamap: DataMap,
    blocks: Sequence[Block],
    records: Sequence[tuple[int, str]],
    among: Container[int],
) -> dict[int, str]:
    """Records (of those ``among``) a known foreign-key block stops, with the error to store.

    Worded as what to change, not as the database's message: the officer needs to know
    that kept data holds the row, and which setting releases it.
    """
    suspects = [(rid, key) for rid, key in records if rid in among]
    if not blocks or not suspects:
        return {}
    found: dict[int, str] = {}
    with datamap.engine.connect() as conn:
        for block in blocks:
            stopped = datamap.referenced_subjects(
                conn, block.foreign_key, [key for rid, key in suspects if rid not in found]
            )
            for rid, key in suspects:
                if key in stopped and rid not in found:
                    found[rid] = f"blocked by {block.advice}; waits for that change or a retry"[
                        :1000
                    ]
    return found


def screen(
    session: Session, rows: Sequence[Claimed], work: BucketWork, now: datetime
) -> tuple[dict[int, str], list[int], set[int]]:
    """(refused records with their error, those of them on legal hold, records that wait).

    A legal hold wins over any acceptance, however long ago it was given. A record whose
    batch accepted a narrower plan than the policy's current one, or one that found the
    subject's rows through other links, is refused: nothing of it is erased until someone
    re-reviews. A subject with an open access request waits for its
    export, so the evidence is still there when it is built.
    """
    current, accepted_plans = work.current, work.accepted
    holds = held_profiles(session, [r.compliance_profile_id for r in rows], now=now)
    refused: dict[int, str] = {}
    held: list[int] = []
    for r in rows:
        if r.compliance_profile_id in holds:
            refused[r.id] = (
                f"{holds[r.compliance_profile_id]}: not erased; it is applied once the hold is "
                "lifted"
            )
            held.append(r.id)
        elif r.accepted_plan_hash is not None:
            accepted = accepted_plans.get(r.accepted_plan_hash)
            changes = (
                plan_changes(accepted, current)
                if accepted is not None
                else ["the accepted plan is missing"]
            )
            if changes:
                refused[r.id] = refusal(changes)
    asked = [r.subject_id for r in rows if r.id not in refused]
    exporting = awaiting_access_export(session, asked, subject_type=work.bucket.subject)
    waiting = {r.id for r in rows if r.id not in refused and r.subject_id in exporting}
    return refused, held, waiting


def mark_plan(
    session: Session,
    applied: Sequence[int],
    blocked: Mapping[int, str],
    refused: Mapping[int, str],
    current: PlanDocument,
    current_hash: str,
    now: datetime,
) -> None:
    """Keep the plan the records were applied under; note it on the blocked ones; store
    refusals' errors. ``settle_records`` noted it on the applied ones, in the same UPDATE
    that marked them applied.
    """
    if applied:
        store_plan(session, current)  # kept for replay-erasures, once per plan
    if blocked:
        session.execute(
            update(DeletionRecord)
            .where(among_ids(DeletionRecord.id, blocked))
            .values(blocked_plan_hash=current_hash)
        )
    for rid, message in refused.items():
        session.execute(
            update(DeletionRecord)
            .where(DeletionRecord.id == rid)
            .values(deletion_error=message, updated_at=now)
        )
