"""An officer's decisions on a request: approve or reject (one or many), extend its
deadline, retry it once failed. Each is checked, then carried out as planned
(``plan`` dataclasses and ``carry_out_*``); a dry run shows the checked request, changing
nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from compliance.audit.texts import text_details
from compliance.deletion.plans import plan_document, plan_hash, store_plan
from compliance.dsar.deadlines import due_date, effective_due_at
from compliance.dsar.objections import BY_LAW, never_refused
from compliance.dsar.requests import (
    audit_request,
    get_dsar,
    next_actions,
    requests_by_reference,
)
from compliance.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
)
from compliance.free_text import free_text
from compliance.policy.jurisdictions import MAX_PERIOD_DAYS, MAX_PERIOD_MONTHS, period_text
from compliance.policy.model import Policy
from compliance.roles import COMPLIANCE_OFFICER, Identity, require
from compliance.store.models import DsarRequest, utcnow
from compliance.store.states import (
    OPEN_DSAR_STATUSES,
    DsarKind,
    DsarStatus,
    move,
)


def _detached(session: Session, request: DsarRequest) -> DsarRequest:
    """A dry run's answer: the request as loaded, cut loose so nothing about it is saved."""
    session.expunge(request)
    session.rollback()
    return request


def approval_refusal(request: DsarRequest, viewer: str | None, *, four_eyes: bool) -> str | None:
    """Why ``viewer`` may not approve this request, or None: the one rule the review refuses
    by and the desk offers its Approve button by.

    With ``four_eyes`` (the policy's ``[review] four_eyes``) nobody approves a request they
    logged themselves: one person alone must not both ask for and release someone's data.
    """
    if four_eyes and viewer is not None and request.requested_by == viewer:
        return (
            f"{viewer} logged {request.reference} and may not approve it too "
            "([review] four_eyes): another compliance officer must approve it"
        )
    return None


@dataclass(frozen=True)
class ErasureTarget:
    """What approving an erasure request acts on, as its impact preview showed it.

    ``version`` names it in one token: the erasure plan's hash prefix and a hash over the
    request, its subject and the whole plan hash. An approval carrying the version its
    approver saw is refused once any of these changed.
    """

    reference: str
    subject_id: str
    plan_hash: str | None
    version: str


def _erasure_target(request: DsarRequest, policy: Policy) -> ErasureTarget:
    plan = (
        plan_hash(plan_document(policy, policy.erasure_bucket_name(request.subject_type)))
        if policy.dsar.erasure_review
        else None
    )
    content = json.dumps(
        [request.reference, request.kind, request.subject_id, request.status, plan],
        separators=(",", ":"),
    )
    digest = hashlib.sha256(content.encode()).hexdigest()[:16]
    version = f"{(plan or '-')[:8]}.{digest}"
    return ErasureTarget(request.reference, request.subject_id, plan, version)


def erasure_target(session: Session, policy: Policy, reference: str) -> ErasureTarget:
    """The erasure request as an approval would find it now (its preview's version)."""
    target = _erasure_target(get_dsar(session, reference), policy)
    session.rollback()
    return target


def check_erasure_unchanged(
    session: Session, policy: Policy, request: DsarRequest, seen_version: str
) -> ErasureTarget:
    """The request's target now, or a Conflict when it is no longer what the approver saw."""
    now = _erasure_target(request, policy)
    if now.version == seen_version:
        return now
    parts = seen_version.split(".")
    if len(parts) != 2:
        why = "the preview's version is not one this desk made"
    elif parts[0] != (now.plan_hash or "-")[:8]:
        why = "the erasure plan in the policy changed"
    else:
        why = "the request is not the one previewed"
    raise Conflict(
        f"{request.reference} changed since you looked ({why}); nothing was decided. "
        "Look at it again, then decide."
    )


def review_dsar(
    session: Session,
    reference: str,
    decision: str,
    *,
    reviewer: Identity,
    four_eyes: bool,
    reason: str | None = None,
    now: datetime | None = None,
    policy: Policy | None = None,
    seen_version: str | None = None,
    execute: bool,
) -> DsarRequest:
    """A compliance officer approves or rejects a pending request, once; reject needs a reason.

    With ``four_eyes`` (the policy's ``[review] four_eyes``) nobody approves a request they
    logged themselves: one person alone must not both ask for and release someone's data.

    Approving an erasure request is its review: process-dsar-requests accepts its deletion
    record under this decision, and no batch is made. With ``[dsar] erasure_review`` the
    approver was shown the request's impact preview (``reports.review_queue.request_impact``)
    and the erasure plan it came from is stored, as a batch acceptance stores its plan, so
    apply-deletions refuses the erasure if the policy widens before it runs. An erasure is
    approved only given the ``policy``; given ``seen_version`` (``erasure_target(...).version``
    of the preview the approver saw) an erasure whose target changed since is refused.
    """
    if decision not in ("approve", "reject"):
        raise InvalidInput(f"decision must be approve or reject, got '{decision}'")
    require(reviewer, COMPLIANCE_OFFICER, to="review DSAR requests")
    reason = free_text(reason, field="reason")
    if decision == "reject" and reason is None:
        raise InvalidInput("rejecting a DSAR request needs a reason", field="reason")
    request = get_dsar(session, reference, lock=execute)
    _check_reviewable(request, decision, reviewer.email, four_eyes=four_eyes)
    erasure = decision == "approve" and request.kind == DsarKind.ERASURE
    if erasure and policy is None:
        raise TypeError("approving an erasure request needs the policy: it accepts its plan")
    if erasure and seen_version is not None and policy is not None:
        check_erasure_unchanged(session, policy, request, seen_version)
    if not execute:
        return _detached(session, request)
    decided = DsarStatus.APPROVED if decision == "approve" else DsarStatus.REJECTED
    plan = ReviewPlan(request, decided, reviewer.email, reason, policy if erasure else None)
    return carry_out_review(session, plan, now=now or utcnow())


@dataclass(frozen=True)
class ReviewPlan:
    """An officer's decision on a request, as checked (state, four eyes, reason, target)."""

    request: DsarRequest
    decision: DsarStatus
    reviewer: str
    reason: str | None
    #: Given for an erasure's approval: its erasure plan is accepted with it.
    erasure_policy: Policy | None


def carry_out_review(session: Session, plan: ReviewPlan, *, now: datetime) -> DsarRequest:
    """Record the checked decision, the erasure plan it accepts, and its audit (committed)."""
    request = plan.request
    details: dict[str, Any] = {
        "kind": request.kind,
        **text_details(
            session, "reason", plan.reason, subjects=[(request.subject_type, request.subject_id)]
        ),
    }
    if plan.erasure_policy is not None:
        details.update(_accept_erasure_plan(session, plan.erasure_policy, request))
    move(request, plan.decision)
    request.reviewed_by = plan.reviewer
    request.reviewed_at = now
    request.reviewed_reason = plan.reason
    audit_request(session, request, f"dsar.{request.status}", plan.reviewer, details)
    session.commit()
    return request


def _check_reviewable(
    request: DsarRequest, decision: str, reviewer: str, *, four_eyes: bool
) -> None:
    """Refuse a decision this request no longer takes, or this reviewer may not make."""
    if request.status != DsarStatus.PENDING:
        by = f" by {request.reviewed_by}" if request.reviewed_by else ""
        raise Conflict(f"{request.reference} is already {request.status}{by}; not reviewed again")
    refused = approval_refusal(request, reviewer, four_eyes=four_eyes)
    if decision == "approve" and refused is not None:
        raise PermissionDenied(refused)
    if decision == "reject" and never_refused(request):
        raise Conflict(f"{request.reference} cannot be rejected ({BY_LAW}); approve it")


def _accept_erasure_plan(session: Session, policy: Policy, request: DsarRequest) -> dict[str, Any]:
    """Store the approved plan, so apply-deletions refuses a wider one; what the audit says."""
    details: dict[str, Any] = {"erasure_review": policy.dsar.erasure_review}
    if policy.dsar.erasure_review:
        bucket = policy.erasure_bucket_name(request.subject_type)
        request.accepted_plan_hash = store_plan(session, plan_document(policy, bucket))
        details["plan_hash"] = request.accepted_plan_hash
    return details


def _extension(months: int, days: int) -> None:
    """An extension is a whole number of months or of days, not both."""
    limits = (("months", months, MAX_PERIOD_MONTHS), ("days", days, MAX_PERIOD_DAYS))
    for field, value, most in limits:
        if not 0 <= value <= most:
            raise InvalidInput(f"{{field}} must be from 1 to {most}, got {value}", field=field)
    if months and days:
        raise InvalidInput("give the extension in months or in days, not both", field="days")
    if not (months or days):
        raise InvalidInput("give the extension in months or in days", field="months")


def extend_dsar(
    session: Session,
    reference: str,
    *,
    policy: Policy,
    months: int = 0,
    days: int = 0,
    reason: str,
    actor: Identity,
    execute: bool,
) -> DsarRequest:
    """Extend the deadline by ``months`` or ``days``, with a reason, within the jurisdiction.

    The extensions add up, counted from receipt like the deadline itself (GDPR Art. 12(3):
    at most two more months; CCPA: 45 more days), and the new deadline may not pass the
    latest one computed at intake (``latest_due_at``).
    """
    by = require(actor, COMPLIANCE_OFFICER, to="extend DSAR deadlines")
    _extension(months, days)
    why = free_text(reason, field="reason")
    if why is None:
        raise InvalidInput("extending a DSAR deadline needs a reason", field="reason")
    request = get_dsar(session, reference, lock=execute)
    if request.status not in OPEN_DSAR_STATUSES:
        raise Conflict(f"{request.reference} is {request.status}; only open requests are extended")
    law = policy.jurisdictions.get(request.jurisdiction)
    if law is None:
        raise Conflict(
            f"{request.reference} falls under jurisdiction '{request.jurisdiction}', which the "
            "policy no longer declares ([jurisdictions]); its deadline cannot be extended"
        )
    total_months, total_days = request.extension_months + months, request.extension_days + days
    new_due = due_date(
        request.requested_at, law, extension_months=total_months, extension_days=total_days
    )
    _check_extended_due(request, law.name, new_due)
    plan = ExtensionPlan(request, by, why, months, days, total_months, total_days, new_due)
    if not execute:
        preview = _detached(session, request)
        preview.extended_due_at = plan.new_due
        return preview
    return carry_out_extension(session, plan)


@dataclass(frozen=True)
class ExtensionPlan:
    """An extension as checked: the dry run shows its new deadline, the run writes it."""

    request: DsarRequest
    by: str
    reason: str
    months: int
    days: int
    total_months: int
    total_days: int
    new_due: datetime


def carry_out_extension(session: Session, plan: ExtensionPlan) -> DsarRequest:
    """Write the checked extension and audit it (committed)."""
    request = plan.request
    request.extension_months, request.extension_days = plan.total_months, plan.total_days
    request.extended_due_at = plan.new_due
    request.extension_reason = plan.reason
    audit_request(
        session,
        request,
        "dsar.extended",
        plan.by,
        {"months": plan.months, "days": plan.days, "total_months": plan.total_months,
         "total_days": plan.total_days, "due_at": plan.new_due.isoformat()},
    )  # fmt: skip
    session.commit()
    return request


def _check_extended_due(request: DsarRequest, law: str, new_due: datetime) -> None:
    """Conflict when the extended deadline passes the latest one, or does not move at all."""
    latest = request.latest_due_at
    if new_due > latest:
        done = period_text(request.extension_months, request.extension_days)
        raise Conflict(
            f"{request.reference} would then be due {new_due:%Y-%m-%d}, later than {law} "
            f"allows: {latest:%Y-%m-%d} at the latest"
            + (f" (already extended by {done})" if done else "")
        )
    if new_due <= effective_due_at(request):
        raise Conflict(
            f"{request.reference} would still be due {new_due:%Y-%m-%d}, the next working day; "
            "extend it by more"
        )


def retry_dsar(session: Session, reference: str, *, actor: Identity, execute: bool) -> DsarRequest:
    """Put a failed request back in the queue of approved requests."""
    by = require(actor, COMPLIANCE_OFFICER, to="retry DSAR requests")
    request = get_dsar(session, reference, lock=execute)
    if not next_actions(request).can_retry:
        raise Conflict(f"{request.reference} is {request.status}; only failed requests are retried")
    if not execute:
        return _detached(session, request)
    return carry_out_retry(session, RetryPlan(request, by))


@dataclass(frozen=True)
class RetryPlan:
    """A failed request an officer puts back in the queue, as checked."""

    request: DsarRequest
    by: str


def carry_out_retry(session: Session, plan: RetryPlan) -> DsarRequest:
    """Back in the queue with every attempt again (a person looked at it); committed."""
    request = plan.request
    previous = request.last_error
    move(request, DsarStatus.APPROVED)
    request.deletion_record_id = None
    request.attempts = 0
    request.next_attempt_at = None
    audit_request(session, request, "dsar.retried", plan.by, {"previous_error": previous})
    session.commit()
    return request


@dataclass(frozen=True)
class BulkDsarReview:
    """Requests decided one by one; those someone else decided meanwhile, skipped with why."""

    decision: str
    decided: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]
    executed: bool


def review_dsars(
    session: Session,
    references: list[str],
    decision: str,
    *,
    reviewer: Identity,
    four_eyes: bool,
    reason: str | None = None,
    policy: Policy | None = None,
    seen_versions: Mapping[str, str] | None = None,
    execute: bool,
) -> BulkDsarReview:
    """Approve or reject several pending requests, each reviewed and audited on its own
    (an erasure's approval accepts its plan, as one ``review_dsar`` does).

    Given ``seen_versions`` (per erasure request, the version its preview showed), an
    approval is refused up front, before any request is decided, when a still pending
    erasure request changed since.
    """
    wanted = list(dict.fromkeys(references))
    if not wanted:
        raise InvalidInput("choose at least one request")
    if decision not in ("approve", "reject"):
        raise InvalidInput(f"decision must be approve or reject, got '{decision}'")
    require(reviewer, COMPLIANCE_OFFICER, to="review DSAR requests")
    if decision == "reject" and free_text(reason, field="reason") is None:
        raise InvalidInput("rejecting a DSAR request needs a reason", field="reason")
    if decision == "approve" and policy is None:
        kinds = {r.kind for r in requests_by_reference(session, wanted)}
        session.rollback()
        if DsarKind.ERASURE in kinds:  # refused before any is decided, not halfway through
            raise TypeError("approving an erasure request needs the policy: it accepts its plan")
    if decision == "approve" and seen_versions and policy is not None:
        previewed = [r for r in wanted if r in seen_versions]
        for request in requests_by_reference(session, previewed):
            if request.kind == DsarKind.ERASURE and request.status == DsarStatus.PENDING:
                check_erasure_unchanged(session, policy, request, seen_versions[request.reference])
        session.rollback()
    decided: list[str] = []
    skipped: list[tuple[str, str]] = []
    for reference in wanted:
        try:
            review_dsar(
                session, reference, decision, reviewer=reviewer, four_eyes=four_eyes,
                reason=reason, policy=policy, execute=execute,
                seen_version=(seen_versions or {}).get(reference),
            )  # fmt: skip
            decided.append(reference)
        except (Conflict, NotFound, PermissionDenied) as exc:  # four eyes: their own request
            session.rollback()
            skipped.append((reference, str(exc)))
    return BulkDsarReview(decision, tuple(decided), tuple(skipped), execute)
