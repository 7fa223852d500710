"""Notices to the data subject: acknowledgement, extension, refusal, completion, and the
notice that a restriction of processing is being lifted.

GDPR Art. 12 asks that the subject be told when their request is received, why it takes
longer (12(3)), why it is refused and that they may complain (12(4)), and when it is done.
Each notice is rendered from a plain-text and an HTML template (``$placeholder`` syntax,
values HTML-escaped in the HTML body); a deployment overrides any file by putting one of
the same name in ``[dsar] templates_dir``. Every attempt is kept (``dsar_notices``) and
audited by kind and id only, so a failed send is visible and can be retried.
"""

from __future__ import annotations

import html
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from compliance.audit.chain import record_event
from compliance.dsar.deadlines import effective_due_at
from compliance.dsar.mailer import MailError, build_message, send_mail
from compliance.dsar.requests import get_dsar, with_article
from compliance.errors import ConfigError, Conflict, InvalidInput, NotFound, PermissionDenied
from compliance.free_text import free_text
from compliance.logs import log_event
from compliance.policy.jurisdictions import Jurisdiction
from compliance.policy.model import Policy
from compliance.roles import API_INTAKE, COMPLIANCE_OFFICER, SUPPORT, Identity, require
from compliance.store.models import DsarNotice, DsarRequest, utcnow
from compliance.store.states import DsarKind, DsarStatus, NoticeStatus, move

_ADDRESS = re.compile(r"[^\s<>@]+@[^\s<>@]+")
#: Told before a restriction of processing is lifted (Art. 18(3)); sent by lifting it only.
LIFT = "restriction_lift"
NOTICE_KINDS = ("acknowledgement", "extension", "refusal", "completion", LIFT)
SHIPPED = Path(__file__).resolve().parent / "templates"
#: What each kind of request asks for, and its outcome, in the subject's words ($what,
#: $outcome); ``{scope}`` is an objection's scope.
WHAT = {
    DsarKind.ACCESS: "a copy of your personal data",
    DsarKind.ERASURE: "the erasure of your personal data",
    DsarKind.OBJECTION: "an end to the use of your personal data for {scope}",
    DsarKind.RESTRICTION: "the restriction of the processing of your personal data",
    DsarKind.RECTIFICATION: "the correction of your personal data",
    DsarKind.PORTABILITY: "the personal data you gave us, in a machine-readable form",
}
OUTCOME = {
    DsarKind.ACCESS: "Your export is ready. We send the download link and, in a separate "
    "email, a one-time code; the link works for one download only.",
    DsarKind.ERASURE: "We erased your personal data, except what the law obliges us to keep "
    "(for example invoices, under accounting law).",
    DsarKind.OBJECTION: "We no longer use your personal data for {scope}, and every system "
    "we use was told. We keep a note of your objection, without your address, so that it "
    "stays in force even after your data is erased.",
    DsarKind.RESTRICTION: "We keep your personal data but use it for nothing else, and every "
    "system we use was told. We will tell you before we lift the restriction.",
    DsarKind.RECTIFICATION: "We corrected your personal data as you asked, in every system we use.",
    DsarKind.PORTABILITY: "Your export is ready: the data you gave us, as JSON and CSV files "
    "another service can read. We send the download link and, in a separate email, a "
    "one-time code; the link works for one download only.",
}


@dataclass(frozen=True)
class RenderedNotice:
    kind: str
    to: str
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class NoticeResult:
    notice_id: int
    kind: str
    status: NoticeStatus  # sent or failed
    error: str | None


def notice_kinds_for(request: DsarRequest) -> tuple[str, ...]:
    """The notices that make sense in the request's state (an acknowledgement always does)."""
    kinds = ["acknowledgement"]
    if request.extended_due_at is not None:
        kinds.append("extension")
    if request.status == DsarStatus.REJECTED:
        kinds.append("refusal")
    if request.status == DsarStatus.COMPLETED:  # an access export only once it was sent
        kinds.append("completion")
    return tuple(kinds)


def default_reason(request: DsarRequest, kind: str) -> str | None:
    if kind == "extension":
        return request.extension_reason
    if kind == "refusal":
        return request.reviewed_reason
    return None


def _template(policy: Policy, name: str) -> tuple[Path, string.Template]:
    override = policy.dsar.templates_dir
    path = override / name if override is not None and (override / name).is_file() else None
    path = path or SHIPPED / name
    try:
        return path, string.Template(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"notice template {path} cannot be read: {exc.strerror}") from None


def _fill(path: Path, template: string.Template, values: Mapping[str, str]) -> str:
    try:
        return template.substitute(values)
    except KeyError as exc:
        known = ", ".join(f"${k}" for k in sorted(values))
        raise ConfigError(
            f"notice template {path} uses ${exc.args[0]}, which is not one of {known}"
        ) from None
    except ValueError as exc:
        raise ConfigError(f"notice template {path} is malformed: {exc}") from None


def _words(texts: Mapping[DsarKind, str], request: DsarRequest) -> str:
    return texts[DsarKind(request.kind)].format(scope=(request.scope or "").replace("_", " "))


def render_notice(
    policy: Policy, request: DsarRequest, kind: str, *, reason: str | None = None
) -> RenderedNotice:
    """The notice as it would go out: what the dashboard previews is exactly what is sent."""
    if kind not in NOTICE_KINDS:
        raise InvalidInput(f"notice kind must be one of {', '.join(NOTICE_KINDS)}, got '{kind}'")
    lifting = kind == LIFT and request.kind == DsarKind.RESTRICTION
    if kind not in notice_kinds_for(request) and not lifting:
        raise Conflict(
            f"{request.reference} is {request.status}; {with_article(kind)} notice does not fit"
        )
    if not request.subject_email:
        raise Conflict(f"{request.reference} has no email address to send a notice to")
    given = reason if reason is not None else default_reason(request, kind)
    reason = free_text(given, field="reason") or ""
    if kind in ("extension", "refusal", LIFT) and not reason:
        raise InvalidInput(f"{with_article(kind)} notice must tell the subject the reason")
    # A law the policy no longer declares gets neutral wording, not another law's articles.
    law = policy.jurisdictions.get(request.jurisdiction) or Jurisdiction(request.jurisdiction)
    values = {
        "reference": request.reference,
        "what": _words(WHAT, request),
        "received_date": f"{request.requested_at:%Y-%m-%d}",
        "due_date": f"{effective_due_at(request):%Y-%m-%d}",
        "reason": reason,
        "outcome": _words(OUTCOME, request),
        # The request's own law, not GDPR's articles for every subject.
        "citation": law.citation,
        "complaint": law.complaint,
    }
    text_path, text_template = _template(policy, f"{kind}.txt")
    text = _fill(text_path, text_template, values)
    first, _, body = text.partition("\n")
    if not first.startswith("Subject:"):
        raise ConfigError(f"notice template {text_path} must start with a 'Subject: ...' line")
    html_path, html_template = _template(policy, f"{kind}.html")
    html_body = _fill(html_path, html_template, {k: html.escape(v) for k, v in values.items()})
    return RenderedNotice(
        kind=kind,
        to=request.subject_email,
        subject=first.removeprefix("Subject:").strip(),
        text=body.lstrip("\n"),
        html=html_body,
    )


def _attempt(
    session: Session,
    policy: Policy,
    request: DsarRequest,
    notice: DsarNotice,
    actor: Identity,
    env: Mapping[str, str] | None,
) -> NoticeResult:
    by = require(actor, SUPPORT, COMPLIANCE_OFFICER, API_INTAKE, to="send notices to subjects")
    rendered = render_notice(policy, request, notice.kind, reason=notice.reason)
    notice.attempts += 1
    try:  # an address that is not one mailbox (RecipientRefused) fails the notice like a refusal
        message = build_message(
            policy.smtp.sender, rendered.to, rendered.subject, rendered.text, html=rendered.html
        )
        send_mail(policy.smtp, [message], env=env)
    except MailError as exc:
        # A server's refusal may quote the address; neither the table nor the chain keeps it.
        move(notice, NoticeStatus.FAILED)
        notice.last_error = _ADDRESS.sub("<address>", str(exc))
    else:
        move(notice, NoticeStatus.SENT)
        notice.last_error, notice.sent_at = None, utcnow()
    record_event(
        session,
        actor=by,
        action=f"dsar.notice_{notice.status}",
        target_type="dsar_request",
        target_id=request.reference,
        details={"notice_id": notice.id, "kind": notice.kind, "attempt": notice.attempts}
        | ({"error": notice.last_error} if notice.last_error else {}),
    )
    session.commit()
    log_event(
        f"dsar.notice_{notice.status}",
        reference=request.reference,
        kind=notice.kind,
        attempt=notice.attempts,
    )
    return NoticeResult(notice.id, notice.kind, NoticeStatus(notice.status), notice.last_error)


def send_notice(
    session: Session,
    policy: Policy,
    reference: str,
    kind: str,
    *,
    actor: Identity,
    reason: str | None = None,
    env: Mapping[str, str] | None = None,
) -> NoticeResult:
    """Render and send one notice; a failure to send is recorded (status failed), not raised.

    The request itself never depends on its notice: a down mail server must not lose an
    intake or a decision, it leaves a failed notice someone can retry.
    """
    if kind == LIFT:
        raise Conflict("the subject is told a restriction ends by lifting it (lift-restriction)")
    return _send_new(session, policy, reference, kind, actor=actor, reason=reason, env=env)


def send_lift_notice(
    session: Session,
    policy: Policy,
    reference: str,
    *,
    actor: Identity,
    reason: str,
    env: Mapping[str, str] | None = None,
) -> NoticeResult:
    """Art. 18(3): tell the subject, with the reason, that their restriction is being lifted."""
    return _send_new(session, policy, reference, LIFT, actor=actor, reason=reason, env=env)


def _send_new(
    session: Session,
    policy: Policy,
    reference: str,
    kind: str,
    *,
    actor: Identity,
    reason: str | None,
    env: Mapping[str, str] | None,
) -> NoticeResult:
    by = require(actor, SUPPORT, COMPLIANCE_OFFICER, API_INTAKE, to="send notices to subjects")
    if API_INTAKE in actor.roles and kind != "acknowledgement":
        raise PermissionDenied(f"{by} may only acknowledge the requests it logs")
    request = get_dsar(session, reference)
    render_notice(policy, request, kind, reason=reason)  # refuses a bad notice before storing
    stored_reason = (reason if reason is not None else default_reason(request, kind)) or None
    notice = DsarNotice(
        dsar_request_id=request.id,
        kind=kind,
        status=NoticeStatus.PENDING,
        reason=stored_reason.strip() if stored_reason else None,
        created_by=by,
        created_at=utcnow(),
        attempts=0,
    )
    session.add(notice)
    session.flush()
    return _attempt(session, policy, request, notice, actor, env)


def retry_notice(
    session: Session,
    policy: Policy,
    notice_id: int,
    *,
    actor: Identity,
    env: Mapping[str, str] | None = None,
) -> NoticeResult:
    """Send a failed notice again, with the reason it was first written with."""
    notice = session.get(DsarNotice, notice_id)
    if notice is None:
        raise NotFound(f"no notice {notice_id}")
    if notice.status != NoticeStatus.FAILED:
        raise Conflict(f"notice {notice_id} is {notice.status}; only failed notices are retried")
    request = session.scalars(
        select(DsarRequest).where(DsarRequest.id == notice.dsar_request_id)
    ).one()
    return _attempt(session, policy, request, notice, actor, env)
