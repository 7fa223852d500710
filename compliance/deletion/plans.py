"""Erasure plans: what erasing a bucket's subjects does, table by table, as a document.

A plan lists every table erasure touches (the bucket's tables and their ``via``
descendants, never a ``retain`` table), the action (``delete`` or ``anonymize``) and the
anonymized columns. When an officer accepts a batch, the plan they saw is stored under its
hash; ``apply-deletions`` later compares the policy's current plan with it and refuses
whatever would touch a table or column that was not accepted. A narrower plan applies.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from compliance.policy.datamap import descendants
from compliance.policy.loader import Policy
from compliance.store.models import ErasurePlan, utcnow

PlanDocument = list[dict[str, Any]]


def plan_document(policy: Policy, bucket: str) -> PlanDocument:
    """The bucket's erasure plan from the policy alone, in table order (stable for hashing)."""
    steps = []
    for name in sorted(descendants(policy, policy.bucket(bucket).tables)):
        mapped = policy.tables[name]
        if mapped.on_erasure == "retain":
            continue
        columns = sorted(mapped.anonymize) if mapped.on_erasure == "anonymize" else []
        steps.append({"table": name, "action": mapped.on_erasure, "columns": columns})
    return steps


def plan_hash(plan: Sequence[Mapping[str, Any]]) -> str:
    canonical = json.dumps(list(plan), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def store_plan(session: Session, plan: PlanDocument) -> str:
    """Keep the plan under its hash (once; plans are permanent) and return the hash."""
    digest = plan_hash(plan)
    dialect_insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(
        dialect_insert(ErasurePlan)
        .values(hash=digest, plan=plan, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["hash"])
    )
    return digest


def load_plans(session: Session, hashes: Iterable[str | None]) -> dict[str, PlanDocument]:
    wanted = sorted({h for h in hashes if h})
    if not wanted:
        return {}
    return dict(
        session.execute(
            select(ErasurePlan.hash, ErasurePlan.plan).where(ErasurePlan.hash.in_(wanted))
        ).all()
    )


def widening(accepted: PlanDocument, current: PlanDocument) -> list[str]:
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
        elif action == "delete" and was["action"] != "delete":
            changes.append(f"{table} is deleted, but the accepted plan only anonymizes it")
        elif action == "anonymize" and was["action"] == "anonymize":
            changes += [
                f"{table}.{column} not in the accepted plan"
                for column in step["columns"]
                if column not in was["columns"]
            ]
    return changes
