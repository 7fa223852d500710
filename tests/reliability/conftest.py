"""The reliability suite's world: a deployment with work in every state, and its invariants.

Default runs are short (one seed per scenario). ``RELIABILITY_LONG=1`` runs more seeds and
kill points, random-time kills and a real PostgreSQL restart; ``RELIABILITY_SEED=N`` replays
one seed printed by a failing assertion.
"""

from __future__ import annotations

import os
import random
import signal
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select

from compliance.audit.chain import verify_chain
from compliance.deletion.batches import create_deletion_batches
from compliance.deletion.records import create_deletion_records
from compliance.deletion.review import review_batch
from compliance.policy.datamap import DataMap
from compliance.policy.loader import load_policy
from compliance.policy.model import Policy
from compliance.policy.strategies import HashStrategy
from compliance.store.models import (
    AuditEvent,
    ComplianceProfile,
    DeletionBatch,
    DeletionRecord,
    DsarRequest,
)
from tests.conftest import DEMO_POLICY, DPO, Deployment, fill_demo

LONG = os.environ.get("RELIABILITY_LONG") == "1"
_FIXED = os.environ.get("RELIABILITY_SEED")
SEEDS = [int(_FIXED)] if _FIXED else ([11, 23, 37, 41, 59, 73] if LONG else [11])
USERS = 120
BATCH = 20
EVERYONE = """
[buckets.everyone]
description = "Every account (a test of crashes, not a real rule)"
tables = ["users", "workflows", "api_tokens", "activity_logs", "support_tickets"]
rules = [{ sql = "SELECT id FROM users" }]
"""
POLICY = DEMO_POLICY + EVERYONE
APP_TABLES = (
    "users", "workflows", "workflow_runs", "workflow_logs", "api_tokens", "activity_logs",
    "support_tickets",
)  # fmt: skip
RETAIN = ("invoices", "payments")


def seeds() -> list[int]:
    return SEEDS


def policy(d: Deployment) -> Policy:
    """The policy as the jobs see it, exports directory included (Deployment.policy has none)."""
    return load_policy(d.policy_path, env={"COMPLIANCE_EXPORT_DIR": str(d.dir / "exports")})


def datamap(d: Deployment) -> DataMap:
    return DataMap(policy(d), d.app_engine)


@dataclass
class Snapshot:
    """What the world looked like before the crash, to compare against after the rerun."""

    emails: dict[int, str]
    billing: str
    protected: dict[str, str] = field(default_factory=dict)  # subject id -> digest of its rows


def protected_subjects(d: Deployment) -> list[str]:
    """Subjects whose data no job may touch: in rejected batches or excluded in review."""
    with d.session() as s:
        return sorted(
            s.scalars(
                select(ComplianceProfile.subject_id)
                .join(DeletionRecord)
                .where(DeletionRecord.accepted_for_deletion.is_(False))
            ).all()
        )


def subject_digest(d: Deployment, subject: str) -> str:
    rows = [
        d.app_rows("users", f"id = {subject}"),
        d.app_rows("workflows", f"user_id = {subject}"),
        d.app_rows("api_tokens", f"user_id = {subject}"),
        d.app_rows("activity_logs", f"user_id = {subject}"),
        d.app_rows("support_tickets", f"user_id = {subject}"),
    ]
    return repr(rows)


def snapshot(d: Deployment) -> Snapshot:
    return Snapshot(
        emails={u["id"]: u["email"] for u in d.app_rows("users")},
        billing=d.checksum(*RETAIN),
        protected={s: subject_digest(d, s) for s in protected_subjects(d)},
    )


def reviewed_world(d: Deployment, seed: int) -> Deployment:
    """Records for every user in batches of 20: one batch rejected, one record excluded, the
    rest accepted and due."""
    d.write_policy(POLICY)
    fill_demo(d, users_count=USERS, seed=seed)
    with d.session() as s:
        create_deletion_records(s, datamap(d), "everyone", actor="t", execute=True)
        batches = create_deletion_batches(
            s, policy(d), "everyone", actor="t", execute=True, max_batch_size=BATCH
        ).batch_ids
        rejected = random.Random(seed).choice(batches)
        for batch_id in batches:
            if batch_id == rejected:
                review_batch(s, batch_id, "reject", reviewer=DPO, reason="legal hold", execute=True)
                continue
            exclude = {}
            if batch_id == batches[0] or (batch_id == batches[1] and rejected == batches[0]):
                first = s.scalar(
                    select(func.min(DeletionRecord.id)).where(
                        DeletionRecord.deletion_batch_id == batch_id
                    )
                )
                exclude = {first: "under investigation"}
            review_batch(s, batch_id, "accept", reviewer=DPO, exclude=exclude, execute=True)
    return d


def kill_point(seed: int, highest: int) -> str:
    """A seeded commit failpoint: before or after one of the first ``highest`` commits."""
    rng = random.Random(seed)
    return f"commit.{rng.choice(['before', 'after'])}:{rng.randint(1, highest)}"


def run_killed(d: Deployment, args: list[str], point: str, seed: int) -> None:
    job = d.run_process(*args, env={"COMPLIANCE_FAILPOINT": point})
    out, err = job.communicate(timeout=120)
    assert job.returncode == -signal.SIGKILL, (
        f"seed {seed}: {point} never fired in {args} (exit {job.returncode}): {out}{err}"
    )


def rerun(d: Deployment, args: list[str], seed: int, *, expect: tuple[int, ...] = (0,)) -> str:
    job = d.run_process(*args)
    out, err = job.communicate(timeout=300)
    assert job.returncode in expect, f"seed {seed}: rerun of {args} exited {job.returncode}: {err}"
    assert "Traceback" not in err, f"seed {seed}: {err}"
    return out


def is_temp(path: Path) -> bool:
    return path.name.startswith(".") and path.name.endswith(".tmp")


def check_invariants(d: Deployment, before: Snapshot, seed: int, *, killed: bool = False) -> None:
    """What must hold whatever was killed where: the issue's list, checked on the data.

    Right after a kill, a complete export may belong to a request still 'processing' (written,
    not yet recorded); the rerun overwrites and records it.
    """
    why = f"seed {seed}"
    with d.session() as s:
        assert verify_chain(s).ok, f"{why}: the audit chain is broken"
        open_twice = s.execute(
            select(DeletionRecord.compliance_profile_id, DeletionRecord.bucket)
            .where(DeletionRecord.deletion_applied_at.is_(None))
            .group_by(DeletionRecord.compliance_profile_id, DeletionRecord.bucket)
            .having(func.count() > 1)
        ).all()
        assert open_twice == [], f"{why}: two open records for one profile and bucket"
        empty_pending = s.scalars(
            select(DeletionBatch.id).where(
                DeletionBatch.reviewed_status == "pending",
                ~select(DeletionRecord.id)
                .where(DeletionRecord.deletion_batch_id == DeletionBatch.id)
                .exists(),
            )
        ).all()
        assert empty_pending == [], f"{why}: batches without records awaiting review"
        applied_audited = sum(
            e.details.get("applied", 0)
            for e in s.scalars(
                select(AuditEvent).where(AuditEvent.action == "deletion_records.applied")
            )
        )
        applied = s.scalar(
            select(func.count()).where(DeletionRecord.deletion_applied_at.is_not(None))
        )
        purged = s.scalar(select(func.count()).where(AuditEvent.action == "compliance_data.purged"))
        if not purged:  # a purge removes applied records; their audit events stay
            assert applied_audited == applied, (
                f"{why}: {applied} applied, {applied_audited} audited"
            )
        wrongly_applied = s.scalar(
            select(func.count()).where(
                DeletionRecord.deletion_applied_at.is_not(None),
                DeletionRecord.accepted_for_deletion.is_not(True),
            )
        )
        assert wrongly_applied == 0, f"{why}: a record not accepted was applied"
        completed = {
            Path(r.export_path).name
            for r in s.scalars(
                select(DsarRequest).where(
                    DsarRequest.status.in_(("ready", "completed")),
                    DsarRequest.export_path.is_not(None),
                )
            )
        }
        if killed:
            completed |= {
                f"{reference}.zip"
                for reference in s.scalars(
                    select(DsarRequest.reference).where(DsarRequest.status == "processing")
                )
            }
    assert d.checksum(*RETAIN) == before.billing, f"{why}: a retain table changed"
    for subject, digest in before.protected.items():
        assert subject_digest(d, subject) == digest, f"{why}: subject {subject} was touched"
    hashed = HashStrategy().transform
    for user in d.app_rows("users"):
        original = before.emails.get(user["id"])
        if original is not None:
            assert user["email"] in (original, hashed(original)), f"{why}: hashed twice"
    exports = d.dir / "exports"
    for path in exports.iterdir() if exports.exists() else []:
        if is_temp(path):
            continue
        assert path.name in completed, f"{why}: {path.name} is not on a built request"
        with zipfile.ZipFile(path) as archive:
            assert archive.testzip() is None, f"{why}: {path.name} is not a complete ZIP"


AfterRerun = Callable[[Deployment, Snapshot, int], None]
