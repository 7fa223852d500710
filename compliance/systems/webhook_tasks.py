"""Webhook tasks: sent with a signed body and an idempotency key fixed when the task was
created, retried with exponential backoff, answered at once, later by polling, or by a
signed callback.

Crash safety: a webhook task is marked ``sent`` (and committed) before the request leaves,
so a run killed afterwards resends it, after a short lease, with the same key; the
service's answer is stored under a condition on the task's state, so a late duplicate
answer changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    and_,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from compliance import failpoints
from compliance.errors import InvalidInput, NotFound, stored_error
from compliance.logs import log_event
from compliance.policy.model import Policy
from compliance.policy.systems import System, SystemKind
from compliance.storage import ExportStore, export_store
from compliance.store.models import DsarRequest, ErasureTask, utcnow
from compliance.store.sql import among_ids, rows_changed
from compliance.store.states import TaskStatus, move
from compliance.systems import webhook
from compliance.systems.payloads import task_details
from compliance.systems.tasks import (
    FINISHED,
    MAX_BACKOFF,
    audit_task,
    backoff,
    finish_task,
    settle_owner,
)
from compliance.systems.webhook import WireStatus


@dataclass
class WebhookRun:
    sent: int = 0
    done: int = 0
    accepted: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[dict[str, object]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Each counter by its name (sent, done, accepted, retrying, failed), in that order."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "errors"}


def _lease(system: System) -> timedelta:
    """A sent task with no answer after this long is taken for lost and sent again (same key)."""
    return timedelta(seconds=2 * system.timeout_s + 5)


def _due_webhook(now: datetime, systems: Mapping[str, System]) -> Any:
    """Pending tasks whose time has come, lost sends, and accepted ones due for a poll."""
    lost = [
        and_(ErasureTask.system == name, ErasureTask.sent_at <= now - _lease(system))
        for name, system in systems.items()
    ]
    pollable = [n for n, s in systems.items() if s.status_url]
    return and_(
        ErasureTask.system_kind == SystemKind.WEBHOOK,
        ErasureTask.system.in_(list(systems)),
        or_(
            and_(
                ErasureTask.status == TaskStatus.PENDING,
                or_(ErasureTask.next_attempt_at.is_(None), ErasureTask.next_attempt_at <= now),
            ),
            and_(
                ErasureTask.status == TaskStatus.SENT, ErasureTask.accepted_at.is_(None), or_(*lost)
            ),
            and_(
                ErasureTask.status == TaskStatus.SENT,
                ErasureTask.accepted_at.is_not(None),
                ErasureTask.system.in_(pollable),
                ErasureTask.next_attempt_at <= now,
            ),
        ),
    )


def _reference(session: Session, task: ErasureTask) -> str:
    if task.dsar_request_id is not None:
        return (
            session.scalar(
                select(DsarRequest.reference).where(DsarRequest.id == task.dsar_request_id)
            )
            or f"request-{task.dsar_request_id}"
        )
    from_request = session.scalar(
        select(DsarRequest.reference).where(
            DsarRequest.deletion_record_id == task.deletion_record_id
        )
    )
    return from_request or f"DR-{task.deletion_record_id}"


def run_webhook_tasks(
    session: Session,
    policy: Policy,
    *,
    actor: str,
    now: datetime | None = None,
    record_ids: Sequence[int] | None = None,
    request_ids: Sequence[int] | None = None,
    store: ExportStore | None = None,
) -> WebhookRun:
    """Send (or poll) every due webhook task of these records or requests, one at a time.

    Each task is claimed with a conditional UPDATE committed before the request leaves, so
    two workers never send it at once and a crash leaves evidence that it may have gone.
    """
    now = now or utcnow()
    systems = {n: s for n, s in policy.systems.items() if s.kind == SystemKind.WEBHOOK}
    run = WebhookRun()
    if not systems:
        return run
    secrets = {name: webhook.secret_for(system) for name, system in systems.items()}
    query = select(ErasureTask.id).where(_due_webhook(now, systems)).order_by(ErasureTask.id)
    if record_ids is not None:
        query = query.where(among_ids(ErasureTask.deletion_record_id, record_ids))
    if request_ids is not None:
        query = query.where(ErasureTask.dsar_request_id.in_(list(request_ids)))
    ids = list(session.scalars(query))
    session.rollback()
    for task_id in ids:
        task = session.get(ErasureTask, task_id)
        assert task is not None
        polling = task.status == TaskStatus.SENT and task.accepted_at is not None
        if not _claim_webhook_task(session, task, systems, now, polling=polling):
            continue  # another worker has it
        system = systems[task.system]
        answer = _ask_system(session, task, system, secrets[task.system], polling=polling)
        if answer is None:
            continue
        if not polling:
            run.sent += 1
        _outcome(session, task, system, answer, actor=actor, now=now, store=store, run=run)
        session.commit()
    return run


def _claim_webhook_task(
    session: Session,
    task: ErasureTask,
    systems: Mapping[str, System],
    now: datetime,
    *,
    polling: bool,
) -> bool:
    """Claim the task (committed) if it is still due; False when another worker took it."""
    claim = (
        update(ErasureTask)
        .where(ErasureTask.id == task.id, _due_webhook(now, systems))
        .values(
            status=TaskStatus.SENT,
            sent_at=now if not polling else ErasureTask.sent_at,
            attempts=ErasureTask.attempts + (0 if polling else 1),
            next_attempt_at=now + _poll_interval(task, now) if polling else None,
            updated_at=now,
        )
    )
    if rows_changed(session.execute(claim)) != 1:
        session.rollback()
        return False
    session.commit()
    session.refresh(task)
    return True


def _ask_system(
    session: Session, task: ErasureTask, system: System, secret: bytes, *, polling: bool
) -> webhook.Answer | None:
    """Send the task, or poll for it; None when a poll says to ask again later."""
    reference = _reference(session, task)
    if polling:
        answer = webhook.poll(
            system, reference=reference, idempotency_key=task.idempotency_key, secret=secret
        )
        if answer.status == WireStatus.ACCEPTED or not answer.declared:
            # Still working, or the status URL did not answer: ask again later.
            task.last_error = None if answer.declared else answer.error
            session.commit()
            return None
        return answer
    payload = {
        "kind": task.action,
        "reference": reference,
        "idempotency_key": task.idempotency_key,
        "subject": task.subject or {},
        **task_details(session, task),
    }
    log_event("task.sending", task_id=task.id, system=task.system, attempt=task.attempts)
    failpoints.hit("tasks.before_send")
    answer = webhook.send(system, payload, idempotency_key=task.idempotency_key, secret=secret)
    failpoints.hit("tasks.after_send")
    return answer


def _poll_interval(task: ErasureTask, now: datetime) -> timedelta:
    """Poll often at first, then less: half the time since acceptance, 1 minute to 6 hours."""
    since = now - (task.accepted_at or now)
    return max(timedelta(minutes=1), min(since / 2, MAX_BACKOFF))


def _outcome(
    session: Session,
    task: ErasureTask,
    system: System,
    answer: webhook.Answer,
    *,
    actor: str,
    now: datetime,
    store: ExportStore | None,
    run: WebhookRun,
) -> None:
    """Record what the system answered: done, accepted for later, or a failed attempt."""
    if answer.status == WireStatus.DONE:
        finish_task(
            session,
            task,
            actor=f"system:{task.system}",
            now=now,
            data=answer.data,
            store=store,
        )
        run.done += 1
    elif answer.status == WireStatus.ACCEPTED:
        task.accepted_at = task.accepted_at or now
        task.next_attempt_at = now + timedelta(minutes=1) if system.status_url else None
        task.last_error = None
        run.accepted += 1
        audit_task(
            session,
            task,
            "task.accepted",
            actor=actor,
            details={"system": task.system},
        )
    else:
        failed = _count_failed_attempt(task, system, answer.error, now, run)
        if failed:
            audit_task(
                session,
                task,
                "task.failed",
                actor=actor,
                details={
                    "system": task.system,
                    "attempts": task.attempts,
                    "error": task.last_error,
                },
            )
    task.updated_at = now


def _count_failed_attempt(
    task: ErasureTask, system: System, error: str | None, now: datetime, run: WebhookRun
) -> bool:
    """Retry later with backoff, or fail the task (True) once it has used its attempts."""
    task.last_error = stored_error(error or WireStatus.FAILED)
    task.accepted_at = None
    failed = task.attempts >= system.max_attempts
    if failed:
        move(task, TaskStatus.FAILED)
        task.next_attempt_at = None
        run.failed += 1
    else:
        move(task, TaskStatus.PENDING)
        task.next_attempt_at = now + backoff(task.attempts)
        run.retrying += 1
    if len(run.errors) < 20:
        run.errors.append({"task_id": task.id, "system": task.system, "error": task.last_error})
    log_event(
        "task.attempt_failed",
        task_id=task.id,
        system=task.system,
        attempts=task.attempts,
        error=task.last_error,
    )
    return failed


# ---------------------------------------------------------------- callbacks, people, retries


def receive_callback(
    session: Session,
    policy: Policy,
    body: bytes,
    headers: Mapping[str, str],
    *,
    now: datetime | None = None,
    store: ExportStore | None = None,
) -> ErasureTask:
    """A webhook service reports a task it accepted earlier: ``{"idempotency_key", "status"}``.

    Signed like every message; an unknown key, a bad or stale signature is refused, and a
    repeated callback for a finished task changes nothing (replays are harmless).
    """
    now = now or utcnow()
    key = _callback_key(body)
    task = session.scalars(
        select(ErasureTask).where(ErasureTask.idempotency_key == key).with_for_update()
    ).first()
    if task is None or task.system_kind != SystemKind.WEBHOOK:
        raise NotFound("no webhook task with that idempotency key")
    system = policy.system(task.system)
    try:
        # Signed over this task's key: an answer captured for another task is refused.
        webhook.verify(webhook.secret_for(system), headers, body, key=key)
    except webhook.SignatureError as exc:
        raise InvalidInput(f"callback refused: {exc}") from None
    if task.status in FINISHED:
        session.rollback()
        return task
    _apply_answer(session, policy, task, body, now=now, store=store)
    settle_owner(session, task, now)
    session.commit()
    return task


def _callback_key(body: bytes) -> str:
    """The callback's idempotency key, read only from a body small, shallow and JSON enough."""
    if len(body) > webhook.MAX_ANSWER_BYTES:
        raise InvalidInput("the callback is larger than 20 MB")
    try:
        document = json.loads(body.decode("utf-8"))
        key = webhook.check_key(document["idempotency_key"])
    except (ValueError, KeyError, TypeError, RecursionError):  # JSON, UTF-8, 4,300+ digits
        raise InvalidInput("the callback is not JSON with an idempotency_key") from None
    except webhook.SignatureError as exc:
        raise InvalidInput(f"callback refused: {exc}") from None
    if webhook.nesting(document) > webhook.MAX_NESTING:
        raise InvalidInput(f"the callback nests deeper than {webhook.MAX_NESTING} levels")
    return key


def _apply_answer(
    session: Session,
    policy: Policy,
    task: ErasureTask,
    body: bytes,
    *,
    now: datetime,
    store: ExportStore | None,
) -> None:
    """Moves an open task as the verified callback says: done, failed, or still accepted."""
    answer = webhook.parse_answer(body)
    if answer.status == WireStatus.DONE:
        finish_task(
            session,
            task,
            actor=f"system:{task.system}",
            now=now,
            data=answer.data,
            store=store or export_store(policy),
        )
    elif answer.status == WireStatus.FAILED:
        move(task, TaskStatus.FAILED)
        task.last_error = stored_error(answer.error or WireStatus.FAILED)
        task.updated_at = now
        audit_task(
            session,
            task,
            "task.failed",
            actor=f"system:{task.system}",
            details={"system": task.system, "error": task.last_error},
        )
    else:
        task.accepted_at = task.accepted_at or now
