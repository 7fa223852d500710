"""Free text that forgets: reasons and notes live beside the audit trail, not in it.

A reason may name the subject ("rejected: jane@example.org asked twice"), and the chain is
append-only: a text written into an event could never be removed. So an event stores the
text's keyed hash (``<key>_hash`` in its details) and the text sits in ``free_texts``, tied
to the subjects it may describe. Erasing a subject deletes the texts tied to them and their
salts; the event, its hash and every anchor still verify, and what it said reads
``[removed after erasure]``. The hash is HMAC-SHA256 keyed with COMPLIANCE_HASH_KEY (when
set) and a random salt kept with the text: once the text is gone, nobody can check a guess
against the hash, not even whoever holds the key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from compliance.policy.strategies import HASH_KEY_ENV
from compliance.store.models import (
    ComplianceProfile,
    DeletionRecord,
    FreeText,
    FreeTextSubject,
    utcnow,
)

#: What a removed text reads as, wherever it was shown.
REMOVED = "[removed after erasure]"
PREFIX = "hmac-sha256:"
#: Details keys ending in this name a kept text by its hash.
HASH_SUFFIX = "_hash"


def text_hash(body: str, salt: str, *, env: Mapping[str, str] | None = None) -> str:
    key = (os.environ if env is None else env).get(HASH_KEY_ENV, "").encode("utf-8")
    digest = hmac.new(key + bytes.fromhex(salt), body.encode("utf-8"), hashlib.sha256)
    return PREFIX + digest.hexdigest()


def keep_text(
    session: Session, body: str | None, *, subjects: Iterable[tuple[str, str]]
) -> str | None:
    """Store ``body`` (already checked by ``free_text``) tied to ``subjects`` (kind of data
    subject, key); its hash for the audit event, or None when there is no text. In the
    caller's transaction."""
    if body is None:
        return None
    salt = secrets.token_hex(16)
    digest = text_hash(body, salt)
    kept = FreeText(hash=digest, salt=salt, body=body, created_at=utcnow())
    session.add(kept)
    session.flush()
    tied = sorted({(kind, str(key)) for kind, key in subjects})
    if tied:
        session.execute(
            insert(FreeTextSubject),
            [{"free_text_id": kept.id, "subject_type": k, "subject_id": s} for k, s in tied],
        )
    return digest


def text_details(
    session: Session, key: str, body: str | None, *, subjects: Iterable[tuple[str, str]]
) -> dict[str, str | None]:
    """``{"<key>_hash": hash}`` for an event's details: the text kept outside the chain."""
    return {key + HASH_SUFFIX: keep_text(session, body, subjects=subjects)}


def batch_subjects(session: Session, batch_id: int) -> list[tuple[str, str]]:
    """The subjects (kind, key) of a batch's records: whom its decision's reason may describe."""
    return [
        (kind, key)
        for kind, key in session.execute(
            select(ComplianceProfile.subject_type, ComplianceProfile.subject_id)
            .join(DeletionRecord, DeletionRecord.compliance_profile_id == ComplianceProfile.id)
            .where(DeletionRecord.deletion_batch_id == batch_id)
        )
    ]


def texts_by_hash(session: Session, hashes: Iterable[str]) -> dict[str, str]:
    wanted = sorted({h for h in hashes if h})
    if not wanted:
        return {}
    rows = session.execute(select(FreeText.hash, FreeText.body).where(FreeText.hash.in_(wanted)))
    return {digest: body for digest, body in rows}


def _hashed_fields(details: Mapping[str, Any]) -> list[str]:
    return [
        k
        for k, v in details.items()
        if k.endswith(HASH_SUFFIX) and isinstance(v, str) and v.startswith(PREFIX)
    ]


def readable(details: Mapping[str, Any], texts: Mapping[str, str]) -> dict[str, Any]:
    """Details as a person reads them: each kept text beside its hash, or REMOVED."""
    shown = dict(details)
    for key in _hashed_fields(details):
        shown[key.removesuffix(HASH_SUFFIX)] = texts.get(details[key], REMOVED)
    return shown


def readable_all(session: Session, many: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``readable`` for many events' details, with one query for their texts."""
    texts = texts_by_hash(session, (d[k] for d in many for k in _hashed_fields(d)))
    return [readable(d, texts) for d in many]


def forget_texts(session: Session, subject_type: str, subject_id: str) -> int:
    """Delete every text tied to the subject (for everyone it was tied to); how many."""
    ids = list(
        session.scalars(
            select(FreeTextSubject.free_text_id).where(
                FreeTextSubject.subject_type == subject_type,
                FreeTextSubject.subject_id == subject_id,
            )
        )
    )
    if not ids:
        return 0
    session.execute(delete(FreeTextSubject).where(FreeTextSubject.free_text_id.in_(ids)))
    session.execute(delete(FreeText).where(FreeText.id.in_(ids)))
    return len(set(ids))
