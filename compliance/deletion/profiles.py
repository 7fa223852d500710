"""Compliance profiles: the one row per data subject (a kind and a key) everything hangs off.

Records, holds, decisions and suppressions name a subject by profile id; a profile is made
the first time anything concerns the subject, in one statement for a whole chunk of keys.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from compliance.errors import ConfigError
from compliance.policy.model import Policy
from compliance.store.models import ComplianceProfile, DsarRequest, FreeTextSubject, UserExport
from compliance.store.queries import PROFILE_KEY, of_type
from compliance.store.sql import dialect_insert


def insert_missing_profiles(
    session: Session, subject_type: str, subject_ids: list[str], now: datetime
) -> int:
    """Create the profiles these subjects of ``subject_type`` lack, in one statement; return
    how many."""
    profiles = ComplianceProfile.__table__
    rows = [
        {"subject_id": s, "subject_type": subject_type, "created_at": now, "updated_at": now}
        for s in subject_ids
    ]
    return len(
        session.execute(
            dialect_insert(session)(profiles)
            .on_conflict_do_nothing(index_elements=PROFILE_KEY)
            .returning(profiles.c.id),
            rows,
        ).all()
    )


def ensure_profiles(
    session: Session, subject_type: str, subject_ids: list[str], now: datetime
) -> tuple[dict[str, int], int]:
    """Profile ids for the subjects of ``subject_type``, creating the missing ones."""
    created = insert_missing_profiles(session, subject_type, subject_ids, now)
    found = dict(
        session.execute(
            select(ComplianceProfile.subject_id, ComplianceProfile.id).where(
                of_type(subject_type), ComplianceProfile.subject_id.in_(subject_ids)
            )
        ).all()
    )
    return found, created


def count_new_profiles(session: Session, subject_type: str, subject_ids: list[str]) -> int:
    """How many of these subjects have no compliance profile yet (``add_records`` makes one)."""
    known = session.scalar(
        select(func.count()).where(
            of_type(subject_type), ComplianceProfile.subject_id.in_(subject_ids)
        )
    )
    return len(subject_ids) - (known or 0)


def check_declared_kinds(session: Session, policy: Policy) -> None:
    """Refuse to work on subjects of a kind the policy no longer declares.

    A desk that moves from one ``[subjects]`` section to ``[subjects.NAME]`` ones keeps its
    profiles, holds and requests under the kind they were made as (``default``): read as
    another kind's, a legal hold on customer 5 would no longer keep them, so every job stops
    here until an operator says which kind they are.
    """
    declared = list(policy.subject_types)
    for model in (ComplianceProfile, DsarRequest, UserExport, FreeTextSubject):
        old = session.scalar(
            select(model.subject_type).where(model.subject_type.not_in(declared)).limit(1)
        )
        if old is not None:
            session.rollback()
            raise ConfigError(
                f"the compliance database holds subjects of kind '{old}', which the policy "
                f"no longer declares (it declares {', '.join(declared)}); say which kind they "
                f"are, in compliance_profiles, dsar_requests, user_exports and "
                f"free_text_subjects alike (UPDATE "
                f"... SET subject_type = '{declared[0]}' WHERE subject_type = '{old}'), or "
                f"declare [subjects.{old}]"
            )
    session.rollback()
