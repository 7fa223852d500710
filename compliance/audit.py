"""The audit trail: append-only, hash-chained evidence of every decision and change.

Each event's hash covers its own content and the previous event's hash, so changing,
removing or reordering any past event breaks every link after it. Details name subjects
by compliance profile id only, never by email or name.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from compliance.errors import InvalidInput
from compliance.models import AuditEvent, utcnow

GENESIS = "0" * 64
# Any fixed number; serialises writers so two events never claim the same predecessor.
_CHAIN_LOCK = 7_302_201_764


def _canonical(
    occurred_at: datetime,
    actor: str,
    action: str,
    target_type: str,
    target_id: str | None,
    details: Mapping[str, Any],
) -> str:
    return json.dumps(
        {
            "occurred_at": occurred_at.isoformat(),
            "actor": actor,
            "action": action,
            "target_type": target_type,
            "target_id": target_id,
            "details": details,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )


def compute_hash(prev_hash: str, canonical: str) -> str:
    return hashlib.sha256(f"{prev_hash}\n{canonical}".encode()).hexdigest()


def record_event(
    session: Session,
    *,
    actor: str,
    action: str,
    target_type: str,
    target_id: str | int | None = None,
    details: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """Append one event in the caller's transaction, so it commits with the change it proves."""
    if not actor or not actor.strip():
        raise InvalidInput("an audit event needs an actor")
    # Round-trip through JSON so the hash is computed over exactly what the database stores.
    clean_details = json.loads(json.dumps(dict(details or {}), default=str))
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CHAIN_LOCK})
    prev = session.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1))
    prev_hash = prev or GENESIS
    occurred_at = utcnow()
    target = None if target_id is None else str(target_id)
    event = AuditEvent(
        occurred_at=occurred_at,
        actor=actor.strip(),
        action=action,
        target_type=target_type,
        target_id=target,
        details=clean_details,
        prev_hash=prev_hash,
        hash=compute_hash(
            prev_hash,
            _canonical(occurred_at, actor.strip(), action, target_type, target, clean_details),
        ),
    )
    session.add(event)
    session.flush()
    return event


@dataclass(frozen=True)
class ChainCheck:
    ok: bool
    checked: int
    broken_event_id: int | None = None
    problem: str | None = None


def verify_chain(session: Session, *, chunk: int = 10_000) -> ChainCheck:
    """Walk every event in order, recomputing hashes; name the first broken link."""
    cols = (
        AuditEvent.id,
        AuditEvent.occurred_at,
        AuditEvent.actor,
        AuditEvent.action,
        AuditEvent.target_type,
        AuditEvent.target_id,
        AuditEvent.details,
        AuditEvent.prev_hash,
        AuditEvent.hash,
    )
    expected_prev = GENESIS
    checked = 0
    last_id = 0
    while True:
        rows = session.execute(
            select(*cols).where(AuditEvent.id > last_id).order_by(AuditEvent.id).limit(chunk)
        ).all()
        if not rows:
            return ChainCheck(ok=True, checked=checked)
        for row in rows:
            if row.prev_hash != expected_prev:
                return ChainCheck(
                    False,
                    checked,
                    row.id,
                    f"event {row.id} does not follow the event before it "
                    "(an event was removed, inserted or reordered)",
                )
            canonical = _canonical(
                row.occurred_at,
                row.actor,
                row.action,
                row.target_type,
                row.target_id,
                row.details or {},
            )
            if compute_hash(row.prev_hash, canonical) != row.hash:
                return ChainCheck(
                    False, checked, row.id, f"event {row.id} was changed after it was written"
                )
            expected_prev = row.hash
            checked += 1
        last_id = rows[-1].id
