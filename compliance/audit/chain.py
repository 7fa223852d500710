"""The audit trail: append-only, hash-chained evidence of every decision and change.

Each event's hash covers its own content and the previous event's hash, so changing,
removing or reordering any past event breaks every link after it. Details name subjects
by compliance profile id only, never by email or name.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, inspect, select, text
from sqlalchemy.orm import Session

from compliance.errors import ConfigError, InvalidInput
from compliance.store.models import AuditEvent, utcnow

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


def record_events(
    session: Session,
    *,
    actor: str,
    action: str,
    target_type: str,
    events: Sequence[tuple[str | int | None, Mapping[str, Any]]],
) -> None:
    """Append many events of one action at once (one INSERT), chained like single ones."""
    if not events:
        return
    if not actor or not actor.strip():
        raise InvalidInput("an audit event needs an actor")
    actor = actor.strip()
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CHAIN_LOCK})
    prev_hash = (
        session.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)) or GENESIS
    )
    occurred_at = utcnow()
    rows = []
    for target_id, details in events:
        clean = json.loads(json.dumps(dict(details), default=str))
        target = None if target_id is None else str(target_id)
        digest = compute_hash(
            prev_hash, _canonical(occurred_at, actor, action, target_type, target, clean)
        )
        rows.append(
            {
                "occurred_at": occurred_at,
                "actor": actor,
                "action": action,
                "target_type": target_type,
                "target_id": target,
                "details": clean,
                "prev_hash": prev_hash,
                "hash": digest,
            }
        )
        prev_hash = digest
    # Core insert keeps the rows in this order, so ids follow the chain.
    session.execute(insert(cast(Table, AuditEvent.__table__)), rows)


@dataclass(frozen=True)
class ChainCheck:
    ok: bool
    checked: int
    broken_event_id: int | None = None
    problem: str | None = None


def verify_chain(session: Session, *, chunk: int = 10_000) -> ChainCheck:
    """Walk every event in order, recomputing hashes; name the first broken link.

    Core rows on one streamed query (not ORM rows, not pages): this loop is the whole cost
    of verifying a million events.
    """
    table = AuditEvent.__table__
    if not inspect(session.connection()).has_table(AuditEvent.__tablename__):
        raise ConfigError(
            "the compliance database has no audit_events table: it was dropped, or init-db "
            "never ran (restore it from a backup; nothing can be verified without it)"
        )
    query = select(
        table.c.id, table.c.occurred_at, table.c.actor, table.c.action, table.c.target_type,
        table.c.target_id, table.c.details, table.c.prev_hash, table.c.hash,
    ).order_by(table.c.id)  # fmt: skip
    expected_prev = GENESIS
    checked = 0
    result = session.connection().execution_options(stream_results=True, yield_per=chunk)
    for event_id, occurred_at, actor, action, ttype, tid, details, prev, digest in result.execute(
        query
    ):
        if prev != expected_prev:
            return ChainCheck(
                False,
                checked,
                event_id,
                f"event {event_id} does not follow the event before it "
                "(an event was removed, inserted or reordered)",
            )
        canonical = _canonical(occurred_at, actor, action, ttype, tid, details or {})
        if compute_hash(prev, canonical) != digest:
            return ChainCheck(
                False, checked, event_id, f"event {event_id} was changed after it was written"
            )
        expected_prev = digest
        checked += 1
    return ChainCheck(ok=True, checked=checked)
