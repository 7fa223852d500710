"""API keys for the intake API: issued once, stored only as a hash, revocable.

A key is 32 random bytes behind a ``pdk_`` prefix; the database keeps its SHA-256 (a key
this long needs no salt or stretching) and its first characters so a list can tell keys
apart. Whoever holds the database cannot call the API; whoever holds a revoked key neither.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from compliance.audit.chain import record_event
from compliance.errors import Conflict, InvalidInput, NotFound, quoted
from compliance.roles import API_INTAKE, COMPLIANCE_OFFICER, Identity, require
from compliance.store.models import ApiKey, utcnow

PREFIX = "pdk_"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


class KeyRefused(Conflict):
    """No key, an unknown key or a revoked key: the API answers 401 and names nothing."""


@dataclass(frozen=True)
class ApiKeyInfo:
    name: str
    key_prefix: str
    created_by: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def actor(self) -> str:
        """How the audit trail and the request's requested_by name what this key did."""
        return f"api:{self.name}"

    @property
    def identity(self) -> Identity:
        """The key acting in the library: it may log requests and nothing else."""
        return Identity(email=self.actor, roles=frozenset({API_INTAKE}), source="api")


@dataclass(frozen=True)
class NewApiKey:
    name: str
    key: str | None  # the key itself, shown once; None in a dry run
    key_prefix: str | None
    executed: bool


def check_key_name(name: str) -> str:
    """The name trimmed of spaces only: "x\u2028" once revoked the key "x"."""
    value = (name or "").strip(" ").lower()
    if not _NAME.fullmatch(value):
        raise InvalidInput(
            f"API key name {quoted(name)} must be 1-63 lower-case letters, digits, '.', '_' or '-'"
        )
    return value


def api_key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _info(row: ApiKey) -> ApiKeyInfo:
    return ApiKeyInfo(
        name=row.name,
        key_prefix=row.key_prefix,
        created_by=row.created_by,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


def _audit(session: Session, row: ApiKey, action: str, actor: str) -> None:
    """Keys are named in the trail by name and prefix, never by anything that could call the API."""
    record_event(
        session,
        actor=actor,
        action=action,
        target_type="api_key",
        target_id=row.name,
        details={"key_prefix": row.key_prefix},
    )


def create_api_key(session: Session, name: str, *, actor: Identity, execute: bool) -> NewApiKey:
    """Issue a key named ``name``; with ``execute=False`` only checks that the name is free.

    A key logs requests about anyone, so only a compliance officer issues one.
    """
    by = require(actor, COMPLIANCE_OFFICER, to="create API keys")
    name = check_key_name(name)
    if session.scalar(select(ApiKey.id).where(ApiKey.name == name)) is not None:
        raise Conflict(f"an API key named '{name}' already exists (names are never reused)")
    if not execute:
        session.rollback()
        return NewApiKey(name=name, key=None, key_prefix=None, executed=False)
    key = PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        name=name,
        key_hash=api_key_digest(key),
        key_prefix=key[: len(PREFIX) + 6],
        created_by=by,
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    _audit(session, row, "api_key.created", by)
    session.commit()
    return NewApiKey(name=name, key=key, key_prefix=row.key_prefix, executed=True)


def revoke_api_key(session: Session, name: str, *, actor: Identity, execute: bool) -> ApiKeyInfo:
    """Refuse the key from now on; it stays listed (revoked) so the audit trail's name resolves."""
    by = require(actor, COMPLIANCE_OFFICER, to="revoke API keys")
    name = check_key_name(name)
    row = session.scalars(select(ApiKey).where(ApiKey.name == name)).first()
    if row is None:
        raise NotFound(f"no API key named '{name}'")
    if row.revoked_at is not None:
        raise Conflict(f"API key '{name}' was already revoked on {row.revoked_at:%Y-%m-%d}")
    if not execute:
        info = _info(row)
        session.rollback()
        return info
    row.revoked_at = utcnow()
    row.revoked_by = by
    _audit(session, row, "api_key.revoked", by)
    session.commit()
    return _info(row)


def list_api_keys(session: Session) -> list[ApiKeyInfo]:
    return [_info(r) for r in session.scalars(select(ApiKey).order_by(ApiKey.name))]


def authenticate(session: Session, key: str | None, *, now: datetime | None = None) -> ApiKeyInfo:
    """The live key a bearer token names, or KeyRefused; notes when it was last used."""
    key = (key or "").strip()
    if not key.startswith(PREFIX):
        raise KeyRefused("a valid API key is required (Authorization: Bearer pdk_...)")
    row = session.scalars(select(ApiKey).where(ApiKey.key_hash == api_key_digest(key))).first()
    if row is None or row.revoked_at is not None:
        raise KeyRefused("this API key is unknown or revoked")
    session.execute(update(ApiKey).where(ApiKey.id == row.id).values(last_used_at=now or utcnow()))
    session.commit()
    return _info(row)
