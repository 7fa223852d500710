"""Erasure plans: what erasing a bucket's subjects does, table by table, as a document.

A plan lists every table erasure touches (the bucket's tables and their ``via``
descendants, never a ``retain`` table), the action (``delete`` or ``anonymize``) and the
anonymized columns, and how each of those tables finds the subject: its link
(``subject_column``, or the ``via`` hop to its parent, and the system it lives in) for every
table on the way up to the subject, and the subject itself (``[subjects]`` table and key).
When an officer accepts a batch, the plan they saw is stored under its hash;
``apply-deletions`` and ``replay-erasures`` later compare the policy with it and refuse
whatever would touch a table or column that was not accepted, or reach rows through a link
that was not: the same table erased through another column is other people's data. A
narrower plan applies.

Plans stored before links were recorded (issue 25) get the links in force when the
compliance database is upgraded (``record_missing_links``): a new plan, the old steps plus
those links, marked ``links_recorded_after_acceptance`` and pointed at from the old one, so
the batches, records and ledger rows naming the old hash keep the evidence of what was seen.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from compliance.audit.chain import record_event
from compliance.errors import stored_error
from compliance.policy.datamap import descendants
from compliance.policy.model import Policy
from compliance.policy.strategies import ErasureAction
from compliance.store.models import DeletionBatch, ErasurePlan, utcnow
from compliance.store.sql import dialect_insert

#: ``{"steps": [...], "subjects": {...}, "links": {...}}``; a plan stored before links were
#: recorded is read back as ``{"steps": [...]}`` (see ``load_plans``).
PlanDocument = dict[str, Any]
Step = dict[str, Any]

#: What a link is made of, in the order differences are reported (policy keys).
_LINK_PARTS = ("system", "subject_column", "via.table", "via.column", "via.parent_column")


def plan_document(policy: Policy, bucket: str) -> PlanDocument:
    """The bucket's erasure plan from the policy alone (stable for hashing).

    The one builder of plans: batch acceptance, DSAR erasure and apply-deletions all call it,
    so every plan carries its links.
    """
    todo: list[Step] = []
    for name in sorted(descendants(policy, policy.bucket(bucket).tables)):
        mapped = policy.tables[name]
        if mapped.on_erasure == ErasureAction.RETAIN:
            continue
        columns = sorted(mapped.anonymize) if mapped.on_erasure == ErasureAction.ANONYMIZE else []
        todo.append({"table": name, "action": mapped.on_erasure, "columns": columns})
    return {"steps": todo, **links_document(policy, [step["table"] for step in todo])}


def links_document(policy: Policy, tables: Iterable[str]) -> dict[str, Any]:
    """How ``tables`` reach the subject under ``policy``: every table up each via chain.

    Tables gone from the data map are left out: nothing erases them any more.
    """
    tables = list(tables)
    links: dict[str, dict[str, Any]] = {}
    for name in tables:
        while name in policy.tables and name not in links:
            mapped = policy.tables[name]
            link: dict[str, Any] = {"system": mapped.system}
            if mapped.via is None:
                link["subject_column"] = mapped.subject_column
            else:
                link["via"] = {
                    "table": mapped.via.table,
                    "column": mapped.via.column,
                    "parent_column": mapped.via.parent_column,
                }
            links[name] = link
            name = mapped.via.table if mapped.via is not None else ""
    return {"subjects": _subjects_document(policy, tables), "links": dict(sorted(links.items()))}


def _subjects_document(policy: Policy, tables: Iterable[str]) -> dict[str, str] | None:
    """The subjects table and key ``tables`` lead to: their kind's (a plan's tables are all of
    one kind); None when that cannot be told (no table of the plan is mapped any more, in a
    policy of several kinds)."""
    kinds = {policy.tables[t].subject for t in tables if t in policy.tables}
    if len(kinds) == 1:
        subjects = policy.subject_types.get(kinds.pop())
    elif not policy.multiple_subject_types:
        subjects = policy.subjects
    else:
        subjects = None
    return None if subjects is None else {"table": subjects.table, "key": subjects.key}


def steps(document: PlanDocument) -> list[Step]:
    return list(document["steps"])


def plan_hash(plan: PlanDocument | Sequence[Mapping[str, Any]]) -> str:
    body: Any = plan if isinstance(plan, Mapping) else list(plan)
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def store_plan(session: Session, plan: PlanDocument) -> str:
    """Keep the plan under its hash (once; plans are permanent) and return the hash.

    A plan with links points at itself (``links_hash``); only plans stored before links
    were recorded have none, which is how ``record_missing_links`` finds them.
    """
    digest = plan_hash(plan)
    session.execute(
        dialect_insert(session)(ErasurePlan)
        .values(hash=digest, plan=plan, links_hash=digest, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["hash"])
    )
    return digest


def load_plans(session: Session, hashes: Iterable[str | None]) -> dict[str, PlanDocument]:
    """The plans stored under ``hashes``; an old plan comes back with its recorded links.

    An old plan whose links are not recorded yet comes back as its steps alone.
    """
    wanted = sorted({h for h in hashes if h})
    if not wanted:
        return {}
    rows = session.execute(
        select(ErasurePlan.hash, ErasurePlan.plan, ErasurePlan.links_hash).where(
            ErasurePlan.hash.in_(wanted)
        )
    ).all()
    linked = {links for digest, _, links in rows if links and links != digest}
    later: dict[str, Any] = dict(
        session.execute(
            select(ErasurePlan.hash, ErasurePlan.plan).where(ErasurePlan.hash.in_(sorted(linked)))
        ).all()
        if linked
        else []
    )
    found: dict[str, PlanDocument] = {}
    for digest, plan, links in rows:
        document = later.get(links, plan) if links else plan
        found[digest] = {"steps": document} if isinstance(document, list) else document
    return found


def widening(accepted: Sequence[Step], current: Sequence[Step]) -> list[str]:
    """What ``current`` would touch that ``accepted`` did not; empty when it is no wider.

    Deleting a row the officer accepted to anonymize is wider; anonymizing a row accepted
    for deletion is narrower, and so is leaving out a table or column.
    """
    before = {step["table"]: step for step in accepted}
    changes: list[str] = []
    for step in current:
        table, action = step["table"], step["action"]
        was = before.get(table)
        if was is None:
            changes.append(f"{table} ({action}) not in the accepted plan")
        elif action == ErasureAction.DELETE and was["action"] != ErasureAction.DELETE:
            changes.append(f"{table} is deleted, but the accepted plan only anonymizes it")
        elif action == ErasureAction.ANONYMIZE and was["action"] == ErasureAction.ANONYMIZE:
            changes += [
                f"{table}.{column} not in the accepted plan"
                for column in step["columns"]
                if column not in was["columns"]
            ]
    return changes


def _part(link: Mapping[str, Any] | None, part: str) -> Any:
    value: Any = link
    for key in part.split("."):
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def _shown(value: Any) -> str:
    return "(none)" if value is None else str(value)


def link_changes(accepted: PlanDocument, current: PlanDocument) -> list[str]:
    """Each part of how subjects are found that differs from the accepted plan, by policy key.

    Compared for every table both plans reach (a table the policy no longer erases is no
    concern; a new table is ``widening``'s). A plan without recorded links has nothing to
    compare: ``record_missing_links`` gives it the links in force first.
    """
    if "links" not in accepted:
        return []
    changes: list[str] = []
    before, now = accepted.get("subjects") or {}, current.get("subjects") or {}
    for part in ("table", "key"):
        if before.get(part) != now.get(part):
            changes.append(
                f"subjects.{part} changed after acceptance: "
                f"{_shown(before.get(part))} → {_shown(now.get(part))}"
            )
    current_links = current.get("links") or {}
    for table, link in sorted(accepted["links"].items()):
        if table not in current_links:
            continue
        for part in _LINK_PARTS:
            was, is_ = _part(link, part), _part(current_links[table], part)
            if was != is_:
                changes.append(
                    f"tables.{table}.{part} changed after acceptance: {_shown(was)} → {_shown(is_)}"
                )
    return changes


def plan_changes(accepted: PlanDocument, current: PlanDocument) -> list[str]:
    """Why ``current`` may not be carried out under ``accepted``; empty when it may.

    A changed link comes first: it means other rows, whatever the tables and actions say.
    """
    changes = link_changes(accepted, current)
    wider = widening(steps(accepted), steps(current))
    if wider:
        changes.append(f"policy changed after acceptance: {'; '.join(wider)}")
    return changes


def refusal(changes: Sequence[str]) -> str:
    """The error stored on a refused record: the differences, then what to do."""
    return stored_error(f"{'; '.join(changes)}; re-review")


@dataclass(frozen=True)
class LinksRecorded:
    """Old plans given the links in force: old hash -> new hash, and the batches naming them."""

    plans: dict[str, str]
    batch_ids: list[int]


def record_missing_links(
    session: Session, policy: Policy, *, actor: str, now: datetime | None = None
) -> LinksRecorded:
    """Give every plan stored without links the links in force now, audited; then commit.

    Called when the compliance database is upgraded (init-db) and, for an upgrade made
    another way, by the first apply-deletions or replay-erasures run (``--execute``) after
    it. Nobody accepted these links: the new plan says so
    (``links_recorded_after_acceptance``) and the ``plans.links_recorded`` event names the
    plans and batches, so a later change of any link refuses those records like any other.
    """
    old = session.execute(
        select(ErasurePlan.hash, ErasurePlan.plan).where(ErasurePlan.links_hash.is_(None))
    ).all()
    if not old:
        session.rollback()
        return LinksRecorded({}, [])
    now = now or utcnow()
    recorded: dict[str, str] = {}
    for digest, plan in old:
        old_steps = plan if isinstance(plan, list) else plan.get("steps", [])
        document = {
            "steps": old_steps,
            **links_document(policy, [step["table"] for step in old_steps]),
            "links_recorded_after_acceptance": True,
        }
        new_hash = store_plan(session, document)
        session.execute(
            update(ErasurePlan).where(ErasurePlan.hash == digest).values(links_hash=new_hash)
        )
        recorded[digest] = new_hash
    batch_ids = sorted(
        session.scalars(
            select(DeletionBatch.id).where(DeletionBatch.accepted_plan_hash.in_(sorted(recorded)))
        )
    )
    record_event(
        session,
        actor=actor,
        action="plans.links_recorded",
        target_type="erasure_plan",
        target_id=None,
        details={
            "plans": recorded,
            "batch_ids": batch_ids[:1000],
            "batches": len(batch_ids),
            "links": "the policy's in force at the upgrade, not seen by the officer",
            "recorded_at": now.isoformat(),
        },
    )
    session.commit()
    return LinksRecorded(recorded, batch_ids)
