"""DSAR processing: workers claim approved requests, export or schedule erasure, settle, deliver.

An access request gets a task per system (compliance.systems.tasks): webhook systems are
asked for their data, manual ones wait for a person's upload, and the export is written,
one folder per system, once every one of them is done. The request is then ``ready``; with
``[dsar] auto_deliver`` (and an ``[smtp]`` section) the same run emails the subject the
link and the code, and the request is ``completed`` once the mail server took them. An
erasure request waits for its deletion record in the ``dsar_erasure`` bucket to be applied
by apply-deletions, which itself waits for every system's task (``erasure_requests``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from compliance.dsar import rights
from compliance.dsar.delivery import default_download_url, send_link
from compliance.dsar.erasure_requests import (
    erasure_outcome,
    process_erasure,
    scheduled_erasures,
    settle_erasures,
)
from compliance.dsar.exports import SystemFile, build_access_export
from compliance.dsar.forget import hash_erased_keys, plan_key_hashing
from compliance.dsar.requests import audit_request, backoff, fail_request
from compliance.errors import ComplianceError, InvalidInput, NotFound, first_line, stored_error
from compliance.logs import log_event
from compliance.policy.datamap import DataMap
from compliance.policy.model import Policy
from compliance.policy.systems import SystemKind
from compliance.storage import STORE_FAULTS, ExportStore, export_store
from compliance.store.models import (
    DsarRequest,
    ErasureTask,
    utcnow,
)
from compliance.store.queries import (
    dsar_claimable,
    dsar_deliverable,
    dsar_in,
)
from compliance.store.sql import rows_changed
from compliance.store.states import (
    EXPORT_KINDS,
    TOLD_KINDS,
    DsarKind,
    DsarStatus,
    TaskStatus,
    move,
)
from compliance.systems import tasks as system_tasks
from compliance.systems import webhook_tasks

CLAIM_LEASE = timedelta(minutes=30)  # far longer than one export or erasure takes
# A request waiting for its systems is looked at again by one worker at a time, this far apart.
SETTLE_LEASE = timedelta(minutes=1)


@dataclass
class ProcessResult:
    claimed: int = 0
    exported: int = 0
    erasure_scheduled: int = 0
    completed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    waiting: list[str] = field(default_factory=list)
    retrying: dict[str, str] = field(default_factory=dict)  # reference -> when, after which error
    #: Access exports built, not (yet) delivered: sent by a later run or by support.
    ready: list[str] = field(default_factory=list)
    #: Links the mail server took: those requests are among ``completed``.
    delivered: list[str] = field(default_factory=list)
    #: Links that could not be sent, with why; the request stays ready.
    undelivered: dict[str, str] = field(default_factory=dict)
    #: Why this run sends no link at all (auto_deliver off, no [smtp]); None when it does.
    delivery_off: str | None = None
    #: Erased subjects whose key is now kept only as a keyed hash (forget.hash_erased_keys),
    #: those whose key waits for their open work or hold to end, and why none were hashed.
    keys_hashed: int = 0
    keys_waiting: int = 0
    keys_not_hashed: str | None = None
    #: The dry run's answer: what a run would do now.
    plan: ProcessingPlan | None = None
    executed: bool = False

    @property
    def would_process(self) -> list[str]:
        """The requests a run would claim (kept for --json readers of the dry run)."""
        return list(self.plan.claim) if self.plan else []


def claim_requests(
    session: Session,
    *,
    limit: int = 20,
    now: datetime | None = None,
    lease: timedelta = CLAIM_LEASE,
) -> list[int]:
    """Mark up to ``limit`` claimable requests as processing and commit; return their ids.

    On PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets workers run side by side; the UPDATE's
    repeated condition keeps the claim exclusive on SQLite as well.
    """
    now = now or utcnow()
    query = (
        select(DsarRequest.id)
        .where(dsar_claimable(now, lease))
        .order_by(DsarRequest.requested_at, DsarRequest.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list(session.scalars(query))
    if not ids:
        session.rollback()
        return []
    claimed = list(
        session.scalars(
            update(DsarRequest)
            .where(DsarRequest.id.in_(ids), dsar_claimable(now, lease))
            .values(status=DsarStatus.PROCESSING, processing_started_at=now, last_error=None)
            .returning(DsarRequest.id)
        )
    )
    session.commit()
    return sorted(claimed)


def store_failed(
    session: Session, request: DsarRequest, message: str, actor: str, *, requeue: bool
) -> None:
    """The export store failed us, not the request: no attempt is counted, the error is on its
    timeline, and a claimed request goes back in the queue (``requeue``) for the next run
    (one waiting for its systems stays as it is: the next run looks at it again)."""
    if requeue:
        move(request, DsarStatus.APPROVED)
        request.processing_started_at = None
        request.next_attempt_at = None
    _attempt_noted(session, request, message, actor, {"counted": False})


def _attempt_noted(
    session: Session, request: DsarRequest, message: str, actor: str, details: dict[str, Any]
) -> None:
    """The failed attempt's error on the request and its timeline ("will retry")."""
    request.last_error = stored_error(message)
    audit_request(
        session,
        request,
        "dsar.attempt_failed",
        actor,
        {"kind": request.kind, "attempt": request.attempts, **details, "error": request.last_error},
    )


def release_claims(session: Session, ids: list[int]) -> None:
    """Put back requests claimed by a run that stops before their turn (committed)."""
    if ids:
        session.execute(
            update(DsarRequest)
            .where(
                DsarRequest.id.in_(ids),
                dsar_in(DsarStatus.PROCESSING),
                DsarRequest.export_path.is_(None),
                DsarRequest.deletion_record_id.is_(None),
            )
            .values(status=DsarStatus.APPROVED, processing_started_at=None)
        )
    session.commit()


def _attempt_failed(
    session: Session,
    request: DsarRequest,
    message: str,
    actor: str,
    *,
    max_attempts: int,
    now: datetime,
) -> datetime | None:
    """Count the failure; put the request back for later, or fail it after the last attempt."""
    request.attempts = (request.attempts or 0) + 1
    if request.attempts >= max_attempts:
        fail_request(session, request, message, actor)
        return None
    retry_at = now + backoff(request.attempts)
    move(request, DsarStatus.APPROVED)
    request.next_attempt_at = retry_at
    _attempt_noted(
        session, request, message, actor,
        {"max_attempts": max_attempts, "next_attempt_at": retry_at.isoformat()},
    )  # fmt: skip
    return retry_at


_WAITING_KINDS = (SystemKind.WEBHOOK, SystemKind.MANUAL)


def _process_access(
    session: Session, datamap: DataMap, request: DsarRequest, actor: str, now: datetime
) -> bool:
    """Open the request's tasks, ask the other systems, and export once all are done.

    Returns whether the export was written (False: it waits for a webhook or a person). A
    portability export holds the portable tables of the SQL systems only: no task to wait for.
    """
    policy = datamap.policy
    store = export_store(policy)
    subject = policy.subject_payload(
        request.subject_type, request.subject_id, request.subject_email
    )
    told = request.kind == DsarKind.ACCESS
    if told:
        system_tasks.ensure_request_tasks(session, policy, request, subject=subject, now=now)
    if told and any(s.kind in _WAITING_KINDS for s in system_tasks.access_task_specs(policy)):
        session.commit()  # the tasks' idempotency keys exist before any request leaves
        webhook_tasks.run_webhook_tasks(
            session, policy, actor=actor, now=now, request_ids=[request.id], store=store,
        )  # fmt: skip
        if not system_tasks.request_tasks_finished(session, request.id, kinds=_WAITING_KINDS):
            return False
    parts = [
        _system_part(store, task)
        for task in system_tasks.tasks_of_request(session, request)
        if task.file_path
    ]
    export = build_access_export(
        datamap,
        request.subject_id,
        reference=request.reference,
        store=store,
        now=now,
        parts=parts,
        request=request,
    )
    request.export_path = export.location
    request.export_bytes = export.bytes
    request.export_sha256 = export.sha256
    finished = utcnow()
    session.execute(
        update(ErasureTask)
        .where(
            ErasureTask.dsar_request_id == request.id,
            ErasureTask.system_kind == SystemKind.SQL,
            ErasureTask.status.not_in(system_tasks.FINISHED),
        )
        .values(status=TaskStatus.DONE, done_at=finished, attempts=ErasureTask.attempts + 1,
                updated_at=finished)
    )  # fmt: skip
    export_ready(session, request, actor, finished)
    return True


def _system_part(store: ExportStore, task: ErasureTask) -> SystemFile:
    """What a system returned for the export, read back from the store."""
    assert task.file_path is not None
    content = store.read(task.file_path)
    if content is None:
        raise NotFound(f"the data system '{task.system}' returned is no longer in the export store")
    # Rows from before file_name: the folder's file is named KEY-NAME.
    name = task.file_name or Path(task.file_path).name.split("-", 1)[-1]
    return SystemFile(task.system, name, content)


def export_ready(session: Session, request: DsarRequest, actor: str, now: datetime) -> None:
    """The export is written: the request is ready for delivery, which gets attempts afresh."""
    move(request, DsarStatus.READY)
    request.exported_at = now
    request.last_error = None
    request.attempts = 0
    request.next_attempt_at = None
    audit_request(
        session,
        request,
        "dsar.export_ready",
        actor,
        {"bytes": request.export_bytes, "sha256": request.export_sha256},
    )


def _access_into(
    result: ProcessResult,
    session: Session,
    datamap: DataMap,
    request: DsarRequest,
    actor: str,
    now: datetime,
) -> None:
    """Work on an access request and count it exported or waiting, for claim and settle alike."""
    if _process_access(session, datamap, request, actor, now):
        result.exported += 1
        result.ready.append(request.reference)
    else:
        result.waiting.append(request.reference)


def _error_message(exc: Exception) -> str:
    """A domain error is shown as said; anything else on one line, as the request's note."""
    return str(exc) if isinstance(exc, ComplianceError) else first_line(exc)


def _awaiting_systems(now: datetime) -> ColumnElement[bool]:
    """Access requests whose export waits for other systems, due for another look."""
    return and_(
        DsarRequest.kind == DsarKind.ACCESS,
        dsar_in(DsarStatus.PROCESSING),
        DsarRequest.export_path.is_(None),
        exists().where(ErasureTask.dsar_request_id == DsarRequest.id),
        # Not while the worker that claimed (or last looked at) it may still be at work.
        DsarRequest.processing_started_at <= now - SETTLE_LEASE,
    )


def _told_into(
    result: ProcessResult,
    session: Session,
    datamap: DataMap,
    request: DsarRequest,
    actor: str,
    now: datetime,
    *,
    claimed: bool,
) -> None:
    """Work on a told request (an objection...) and count it completed or waiting."""
    work = rights.process_told if claimed else rights.settle_told
    if work(session, datamap, request, actor, now):
        result.completed.append(request.reference)
    elif request.status == DsarStatus.PROCESSING:  # not a restriction telling its end
        result.waiting.append(request.reference)


def _settle_access(
    session: Session, datamap: DataMap, result: ProcessResult, actor: str, now: datetime
) -> None:
    """Access requests waiting for their systems: ask again, export those now complete;
    told requests (objections...) waiting for theirs: ask again, complete the finished."""

    def access(request: DsarRequest) -> None:
        _access_into(result, session, datamap, request, actor, now)

    def told(request: DsarRequest) -> None:
        _told_into(result, session, datamap, request, actor, now, claimed=False)

    _settle_waiting(session, result, actor, now, _awaiting_systems(now), access)
    _settle_waiting(session, result, actor, now, rights.awaiting_systems(now, SETTLE_LEASE), told)


def _settle_waiting(
    session: Session,
    result: ProcessResult,
    actor: str,
    now: datetime,
    waiting: ColumnElement[bool],
    work: Callable[[DsarRequest], None],
) -> None:
    """Take each request ``waiting`` for this worker, one at a time, and ``work`` on it."""
    ids = list(session.scalars(select(DsarRequest.id).where(waiting).order_by(DsarRequest.id)))
    session.rollback()
    seen = set(result.waiting)
    for request_id in ids:
        # Take it for this worker: a second worker's UPDATE finds the condition false.
        taken = session.execute(
            update(DsarRequest)
            .where(DsarRequest.id == request_id, waiting)
            .values(processing_started_at=now)
        )
        session.commit()
        request = session.get(DsarRequest, request_id)
        if rows_changed(taken) != 1 or request is None or request.reference in seen:
            continue  # another worker has it, or this run's claim just asked
        try:
            work(request)
            session.commit()
        except STORE_FAULTS as exc:
            session.rollback()
            store_failed(session, request, str(exc), actor, requeue=False)
            session.commit()
            raise
        except (ComplianceError, SQLAlchemyError, OSError) as exc:
            session.rollback()
            message = _error_message(exc)
            fail_request(session, request, message, actor)
            session.commit()
            result.failed[request.reference] = message


def delivery_off(policy: Policy) -> str | None:
    """Why a run sends no link, in one line; None when it sends them."""
    if not policy.dsar.auto_deliver:
        return "[dsar] auto_deliver is off: support sends ready exports (Send to subject)"
    if not policy.smtp.configured:
        return "no [smtp] section in the policy: ready exports wait for Send to subject"
    return None


def _deliverable(session: Session, policy: Policy, now: datetime) -> list[int]:
    return list(
        session.scalars(
            select(DsarRequest.id)
            .where(dsar_deliverable(now, policy.dsar.max_attempts))
            .order_by(DsarRequest.id)
        )
    )


def deliver_ready(
    session: Session,
    policy: Policy,
    result: ProcessResult,
    *,
    actor: str,
    download_url: str,
    now: datetime,
    env: Mapping[str, str] | None = None,
) -> None:
    """Email the link and code of every ready export not waiting out a backoff.

    Each is taken for this worker first (its next attempt moved a lease ahead), so two
    workers never mail one subject twice; a worker killed mid-send leaves it to the run
    after the lease. A refused send keeps the request ready, its error on the timeline.
    """
    result.delivery_off = delivery_off(policy)
    if result.delivery_off is not None:
        return
    ids = _deliverable(session, policy, now)
    session.rollback()
    for request_id in ids:
        taken = session.execute(
            update(DsarRequest)
            .where(DsarRequest.id == request_id, dsar_deliverable(now, policy.dsar.max_attempts))
            .values(next_attempt_at=now + CLAIM_LEASE)
        )
        session.commit()
        request = session.get(DsarRequest, request_id)
        if rows_changed(taken) != 1 or request is None:
            continue  # another worker sends it
        try:
            send_link(
                session, policy, request, by=actor, download_url=download_url, env=env,
                now=now, execute=True,
            )  # fmt: skip
        except STORE_FAULTS:
            raise  # on its timeline, uncounted; the job stops (the next link would fail too)
        except (ComplianceError, SQLAlchemyError, OSError) as exc:
            session.rollback()
            message = _error_message(exc)
            result.undelivered[request.reference] = message
            log_event("dsar.delivery_failed", reference=request.reference, error=message)
            continue
        result.delivered.append(request.reference)
        result.completed.append(request.reference)
        if request.reference in result.ready:
            result.ready.remove(request.reference)


@dataclass(frozen=True)
class ProcessingPlan:
    """What a run would do now, read with the run's own conditions: the dry run shows it.

    The run claims exactly ``claim``, settles ``complete_erasures`` and ``fail_erasures`` as
    said, looks again at ``settle_access`` and sends the links of ``deliver`` (and of the
    exports it builds meanwhile, unless ``delivery_off``).
    """

    claim: tuple[str, ...]
    claim_access: tuple[str, ...]
    settle_access: tuple[str, ...]
    complete_erasures: tuple[str, ...]
    fail_erasures: tuple[tuple[str, str], ...]
    deliver: tuple[str, ...]
    delivery_off: str | None
    #: Erased subjects whose key a run would keep only as a keyed hash, and those waiting.
    hash_keys: int = 0
    hash_keys_waiting: int = 0
    hash_keys_refused: str | None = None
    #: Told requests (objections...) whose systems are asked again.
    settle_told: tuple[str, ...] = ()


def plan_dsar_processing(
    session: Session, policy: Policy, *, now: datetime | None = None
) -> ProcessingPlan:
    """Read what a run would claim, settle and deliver now; changes nothing."""
    now = now or utcnow()
    claimable = session.execute(
        select(DsarRequest.reference, DsarRequest.kind)
        .where(dsar_claimable(now, CLAIM_LEASE))
        .order_by(DsarRequest.requested_at, DsarRequest.id)
    ).all()
    settle_access = session.scalars(
        select(DsarRequest.reference).where(_awaiting_systems(now)).order_by(DsarRequest.id)
    ).all()
    settle_told = session.scalars(
        select(DsarRequest.reference)
        .where(rights.awaiting_systems(now, SETTLE_LEASE))
        .order_by(DsarRequest.id)
    ).all()
    completing: list[tuple[str, tuple[str, str]]] = []  # their keys are hashed in this run
    fail: list[tuple[str, str]] = []
    for request, record in scheduled_erasures(session):
        outcome = erasure_outcome(record)
        if outcome.status == DsarStatus.COMPLETED:
            completing.append((request.reference, (request.subject_type, request.subject_id)))
        elif outcome.status == DsarStatus.FAILED:
            fail.append((request.reference, outcome.note or ""))
    off = delivery_off(policy)
    deliver = (
        []
        if off
        else session.scalars(
            select(DsarRequest.reference)
            .where(dsar_deliverable(now, policy.dsar.max_attempts))
            .order_by(DsarRequest.id)
        ).all()
    )
    keys = plan_key_hashing(session, policy, now=now, completing=completing)
    return ProcessingPlan(
        claim=tuple(r.reference for r in claimable),
        claim_access=tuple(r.reference for r in claimable if r.kind in EXPORT_KINDS),
        settle_access=tuple(settle_access),
        complete_erasures=tuple(reference for reference, _ in completing),
        fail_erasures=tuple(fail),
        deliver=tuple(deliver),
        delivery_off=off,
        hash_keys=len(keys.ready),
        hash_keys_waiting=keys.waiting,
        hash_keys_refused=keys.refused,
        settle_told=tuple(settle_told),
    )


def process_dsar_requests(
    session: Session,
    datamap: DataMap,
    *,
    actor: str,
    execute: bool,
    limit: int = 20,
    now: datetime | None = None,
    deliver: bool = True,
    download_url: str | None = None,
    env: Mapping[str, str] | None = None,
) -> ProcessResult:
    """Claim approved requests and do their work; complete erasures that were applied; send
    the links of ready exports (``[dsar] auto_deliver``; ``deliver=False`` leaves them all to
    support, as the demo's setup does).

    One request's failure is stored on it and does not stop the others. It is tried again
    with exponential backoff (``backoff``) until ``[dsar] max_attempts`` attempts failed;
    only then is it ``failed``, and ``retry_dsar`` puts it back. A link that cannot be sent
    leaves its request ``ready`` and is tried again the same way.
    """
    if limit < 1:
        raise InvalidInput(f"{{field}} must be at least 1, got {limit}", field="limit")
    policy = datamap.policy
    if not execute:
        result = ProcessResult(executed=False, plan=plan_dsar_processing(session, policy, now=now))
        result.delivery_off = result.plan.delivery_off if result.plan else None
        return result
    result = ProcessResult(executed=True)
    while True:
        ids = claim_requests(session, limit=limit, now=now)
        if not ids:
            break
        result.claimed += len(ids)
        claimed = session.scalars(
            select(DsarRequest).where(DsarRequest.id.in_(ids)).order_by(DsarRequest.id)
        ).all()
        for done, request in enumerate(claimed):
            try:
                _process_claimed(session, datamap, request, result, actor, now)
            except STORE_FAULTS:
                release_claims(session, [r.id for r in claimed[done + 1 :]])
                raise
    _settle_access(session, datamap, result, actor, now or utcnow())
    settle_erasures(session, policy, result, actor, now or utcnow())
    hashed = hash_erased_keys(session, datamap, actor=actor, now=now or utcnow())
    result.keys_hashed, result.keys_waiting = hashed.subjects, hashed.waiting
    result.keys_not_hashed = hashed.refused
    if deliver:
        deliver_ready(
            session, policy, result, actor=actor, now=now or utcnow(), env=env,
            download_url=download_url or default_download_url(env),
        )  # fmt: skip
    return result


def _process_claimed(
    session: Session,
    datamap: DataMap,
    request: DsarRequest,
    result: ProcessResult,
    actor: str,
    now: datetime | None,
) -> None:
    """Do one claimed request's work; its failure is stored on it and stops no other."""
    started = now or utcnow()
    try:
        if request.kind in EXPORT_KINDS:
            _access_into(result, session, datamap, request, actor, started)
        elif request.kind in TOLD_KINDS:
            _told_into(result, session, datamap, request, actor, started, claimed=True)
        elif process_erasure(session, datamap.policy, request, actor, started):
            result.erasure_scheduled += 1
        else:
            result.waiting.append(request.reference)
        session.commit()
    except STORE_FAULTS as exc:
        session.rollback()
        store_failed(session, request, str(exc), actor, requeue=True)
        session.commit()
        log_event("dsar.store_failed", reference=request.reference, error=type(exc).__name__)
        raise
    except (ComplianceError, SQLAlchemyError, OSError) as exc:
        session.rollback()
        message = _error_message(exc)
        _attempt_failed_and_report(session, datamap.policy, request, result, message, actor, now)


def _attempt_failed_and_report(
    session: Session,
    policy: Policy,
    request: DsarRequest,
    result: ProcessResult,
    message: str,
    actor: str,
    now: datetime | None,
) -> None:
    """Count the failed attempt (committed) and say whether the request fails or retries."""
    retry_at = _attempt_failed(
        session, request, message, actor, max_attempts=policy.dsar.max_attempts,
        now=now or utcnow(),
    )  # fmt: skip
    session.commit()
    if retry_at is None:
        result.failed[request.reference] = message
        log_event("dsar.failed", reference=request.reference, error=message)
    else:
        result.retrying[request.reference] = f"{retry_at.isoformat()}: {message}"
        log_event(
            "dsar.attempt_failed",
            reference=request.reference,
            attempt=request.attempts,
            next_attempt_at=retry_at.isoformat(),
        )
