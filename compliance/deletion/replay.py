"""Replaying erasures after the application database is restored from an older backup.

A restore brings back the rows of every subject erased since the backup was taken. The
decision ledger (and the records purge has not removed yet) knows each of those erasures,
when it happened and the plan it carried out; ``replay`` erases them again, plan by plan,
chunk by chunk. Deletes find nothing twice and every anonymize strategy is idempotent, so
replaying more than needed changes nothing more. A legal hold placed since still wins, and
a plan whose links to the subject (a ``subject_column``, a ``via`` hop, a system, the
subject key) differ from the policy's now is refused: it would erase other people's rows.
A subject whose erasure request completed is known by the keyed hash of their key only
(compliance.audit.subject_keys); the restored subjects table gives it back: its keys are
hashed the same way and matched.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time

from sqlalchemy import String, and_, cast, func, select
from sqlalchemy.orm import Session

from compliance.audit.chain import record_event
from compliance.audit.subject_keys import HASHED_PREFIX, hashed_key, key_secret
from compliance.deletion.erase import erase
from compliance.deletion.holds import held_subjects
from compliance.deletion.plans import (
    PlanDocument,
    link_changes,
    links_document,
    load_plans,
    plan_document,
    plan_hash,
    record_missing_links,
    refusal,
    steps,
)
from compliance.errors import InvalidInput
from compliance.logs import Progress
from compliance.policy.datamap import DataMap, TableAction
from compliance.store.models import (
    ComplianceProfile,
    DecisionLedger,
    DeletionBatch,
    DeletionRecord,
    utcnow,
)
from compliance.store.states import LedgerDecision

CHUNK = 1000


@dataclass
class ReplayResult:
    since: date
    erasures: int = 0  # subjects erased since then, per the ledger and live records
    held: int = 0  # of those, now under a legal hold: left alone
    replayed: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    executed: bool = False
    #: Subjects not erased again because their plan's links differ from the policy's.
    refused: int = 0
    #: Per refused plan (hash), the error naming what changed.
    errors: dict[str, str] = field(default_factory=dict)


def _erasures_since(session: Session, since: datetime) -> dict[tuple[str, str], str | None]:
    """(subject key, bucket) -> hash of the plan carried out (None: before plans were kept)."""
    found: dict[tuple[str, str], str | None] = {}
    ledger = session.execute(
        select(ComplianceProfile.subject_id, DecisionLedger.bucket, DecisionLedger.plan_hash)
        .join(ComplianceProfile, ComplianceProfile.id == DecisionLedger.compliance_profile_id)
        .where(DecisionLedger.decision == LedgerDecision.ERASED, DecisionLedger.applied_at >= since)
    )
    for subject, bucket, digest in ledger:
        found[(subject, bucket)] = digest
    live = session.execute(
        select(
            ComplianceProfile.subject_id,
            DeletionRecord.bucket,
            DeletionRecord.applied_plan_hash,
            func.coalesce(DeletionBatch.accepted_plan_hash, DeletionRecord.accepted_plan_hash),
        )
        .join(ComplianceProfile, ComplianceProfile.id == DeletionRecord.compliance_profile_id)
        .outerjoin(DeletionBatch, DeletionBatch.id == DeletionRecord.deletion_batch_id)
        .where(and_(DeletionRecord.deletion_applied_at >= since))
    )
    for subject, bucket, applied, accepted in live:
        found[(subject, bucket)] = applied or accepted
    return found


def _live_keys(
    datamap: DataMap, erasures: dict[tuple[str, str], str | None]
) -> tuple[dict[tuple[str, str], str | None], frozenset[str]]:
    """The erasures by live key: each hashed key matched against its kind's subjects table's
    keys (the kind of its bucket), hashed alike. Hashed keys with no subject there are
    returned apart: nothing to erase."""
    hashed = {subject for subject, _ in erasures if subject.startswith(HASHED_PREFIX)}
    secret = key_secret(datamap.policy)
    if not hashed or secret is None:
        return erasures, frozenset()
    policy = datamap.policy
    only = None if policy.multiple_subject_types else next(iter(policy.subject_types))

    def kind_of(bucket: str) -> str | None:  # None: a bucket gone, in a desk of several kinds
        return policy.bucket_subject(bucket) or only

    kinds = {kind_of(bucket) for subject, bucket in erasures if subject in hashed}
    live: dict[tuple[str | None, str], str] = {}  # (kind, hashed key) -> the key as typed
    for kind in sorted(k for k in kinds if k is not None):
        subjects = policy.subject_types[kind]
        column = datamap.table(subjects.table).c[subjects.key]
        with datamap.engine.connect() as conn:
            keys = conn.execute(select(cast(column, String)).execution_options(yield_per=10_000))
            for key in keys.scalars():
                digest = hashed_key(key, secret)
                if digest in hashed:
                    live[(kind, digest)] = key
    # A subject known both ways (erased, then found due again) is one subject: the key as
    # typed, from newer work, names its plan.
    ordered = sorted(erasures.items(), key=lambda item: item[0][0] not in hashed)
    found = {
        (live.get((kind_of(bucket), subject), subject), bucket): digest
        for (subject, bucket), digest in ordered
    }
    gone = {s for s, b in erasures if s in hashed and (kind_of(b), s) not in live}
    return found, frozenset(gone)


def _steps(datamap: DataMap, plan: PlanDocument) -> list[TableAction]:
    """The plan's tables and actions, in an order foreign keys allow; never a table now kept."""
    actions = {
        step["table"]: step["action"]
        for step in steps(plan)
        if step["table"] in datamap.policy.tables
    }
    return [
        TableAction(step.table, actions[step.table], step.system)
        for step in datamap.erasure_plan(actions)
        if step.table in actions
    ]


@dataclass(frozen=True)
class ReplayPlan:
    """Who is erased again and by which plan, fixed before any database is touched."""

    since: date
    erasures: int  # subjects erased since then, per the ledger and live records
    held: int  # of those, now under a legal hold: left alone
    groups: dict[str, list[str]]  # plan hash -> subject keys, sorted
    documents: dict[str, PlanDocument]
    #: plan hash -> subject keys left alone, and the error naming the changed links.
    refused: dict[str, tuple[list[str], str]] = field(default_factory=dict)
    #: Hashed keys of erased subjects the subjects table does not hold: nothing to erase.
    gone: frozenset[str] = frozenset()

    @property
    def subjects(self) -> int:
        return sum(len(g) for g in self.groups.values())


def plan_replay(
    session: Session, datamap: DataMap, *, since: date, now: datetime | None = None
) -> ReplayPlan:
    """Group the erasures since ``since`` by the plan each carried out, held subjects aside.

    An erasure from before plans were kept replays the bucket's plan as the policy has it.
    A plan whose links differ from the policy's is set aside with the differences named.
    """
    now = now or utcnow()
    start = datetime.combine(since, time(), UTC)
    if start > now:
        raise InvalidInput(f"{{field}} {since.isoformat()} is in the future", field="since")
    erasures, gone = _live_keys(datamap, _erasures_since(session, start))
    policy = datamap.policy
    named = {subject for subject, _ in erasures}
    held = {k: held_subjects(session, named, now=now, subject_type=k) for k in policy.subject_types}
    held_as_any = set().union(*held.values())
    plans = load_plans(session, {h for h in erasures.values() if h})
    groups: dict[str, list[str]] = defaultdict(list)
    documents: dict[str, PlanDocument] = {}
    held_count = 0
    for (subject, bucket), digest in sorted(erasures.items()):
        kind = policy.bucket_subject(bucket)  # None: a bucket gone from the policy
        if subject in (held_as_any if kind is None else held[kind]):
            held_count += 1
            continue
        if digest is None or digest not in plans:
            known = datamap.policy.buckets
            if bucket not in known and not datamap.policy.is_erasure_bucket(bucket):
                continue  # a bucket gone from the policy, erased before plans were kept
            document = plan_document(datamap.policy, bucket)
            digest = plan_hash(document)
        else:
            document = plans[digest]
        documents[digest] = document
        groups[digest].append(subject)
    session.rollback()
    refused: dict[str, tuple[list[str], str]] = {}
    for digest, document in documents.items():
        current = links_document(datamap.policy, [step["table"] for step in steps(document)])
        changes = link_changes(document, current)
        if changes:
            refused[digest] = (groups.pop(digest), refusal(changes))
    return ReplayPlan(since, len(erasures), held_count, dict(groups), documents, refused, gone)


def replay_erasures(
    session: Session,
    datamap: DataMap,
    *,
    since: date,
    actor: str,
    execute: bool,
    now: datetime | None = None,
) -> ReplayResult:
    """Erase again every subject erased since ``since`` (dry run: count what it would touch).

    Plans stored before links were recorded get the links in force first (see plans).
    """
    if execute:
        record_missing_links(session, datamap.policy, actor=actor, now=now)
    plan = plan_replay(session, datamap, since=since, now=now)
    return carry_out_replay(session, datamap, plan, actor=actor, execute=execute)


def carry_out_replay(
    session: Session, datamap: DataMap, plan: ReplayPlan, *, actor: str, execute: bool
) -> ReplayResult:
    """Walk the plan chunk by chunk: erase and audit each chunk, or only count its rows."""
    result = ReplayResult(
        since=plan.since,
        erasures=plan.erasures,
        held=plan.held,
        executed=execute,
        refused=sum(len(subjects) for subjects, _ in plan.refused.values()),
        errors={digest: error for digest, (_, error) in plan.refused.items()},
    )
    progress = Progress("replay_erasures.progress", total=plan.subjects)
    if execute and plan.refused:
        for digest, (subjects, error) in sorted(plan.refused.items()):
            record_event(
                session,
                actor=actor,
                action="erasures.replay_refused",
                target_type="erasure_plan",
                target_id=digest,
                details={
                    "since": plan.since.isoformat(),
                    "subjects": len(subjects),
                    "error": error,
                },
            )
        session.commit()
    for digest, subjects in sorted(plan.groups.items()):
        steps = _steps(datamap, plan.documents[digest])
        for i in range(0, len(subjects), CHUNK):
            chunk = subjects[i : i + CHUNK]
            keys = [k for k in chunk if k not in plan.gone]
            rows = _replay_chunk(datamap, steps, keys, execute=execute) if keys else {}
            for table, n in rows.items():
                result.rows[table] = result.rows.get(table, 0) + n
            result.replayed += len(chunk)  # the dry run counts whom it would erase again
            if execute:
                record_event(
                    session,
                    actor=actor,
                    action="erasures.replayed",
                    target_type="erasure_plan",
                    target_id=digest,
                    details={"since": plan.since.isoformat(), "subjects": len(chunk), "rows": rows},
                )
                session.commit()
            progress.advance(len(chunk))
    return result


def _replay_chunk(
    datamap: DataMap, steps: list[TableAction], chunk: list[str], *, execute: bool
) -> dict[str, int]:
    """Each SQL system's tables are erased (or counted) in that system's own database."""
    rows: dict[str, int] = {}
    for system in sorted({s.system for s in steps}):
        here = [s for s in steps if s.system == system]
        engine = datamap.engine_for(system)
        if execute:
            with engine.begin() as conn:
                rows.update(erase(datamap, conn, here, chunk))
        else:
            with engine.connect() as conn:
                rows.update({s.table: datamap.count(conn, s.table, chunk) for s in here})
    return rows
