"""Slack alerts: decisions that sit unreviewed and DSAR deadlines that near, told to people.

Planning (what to post, where, or why not) is separate from posting, so a dry run shows
the exact message and a test can check it without a network. Posting uses the real
slack-sdk ``WebClient``; ``SLACK_API_URL`` points it elsewhere (tests use a local stub).
Outside production (``[slack] production = false``) every alert goes to ``test_channel``.
In demo mode without a token, the ``[smtp] outbox`` stands in for Slack (``alert_client``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import quote

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)
from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from compliance.audit.chain import record_event
from compliance.dsar.deadlines import days_left, due_soon_and_overdue, effective_due_at
from compliance.dsar.mailer import write_to_outbox
from compliance.errors import ConfigError
from compliance.logs import log_event
from compliance.policy.model import Policy, SlackSettings
from compliance.store.models import AuditEvent, DeletionBatch, DeletionRecord, utcnow
from compliance.store.queries import batch_pending
from compliance.store.states import AlertStatus

TOKEN_ENV = "SLACK_BOT_TOKEN"
API_URL_ENV = "SLACK_API_URL"
DEFAULT_WITHIN_DAYS = 7
# Slack allows 50 blocks a message; keep room for the header and the "more" note.
MAX_LISTED_REQUESTS = 40
# Audit target types of posted alerts: a bucket's ops alert, or the one DSAR deadline alert.
BUCKET_TARGET = "bucket"
ALERT_TARGET = "alert"
DSAR_DEADLINES_TARGET = "dsar_deadlines"


@dataclass(frozen=True)
class SlackMessage:
    channel: str
    text: str
    blocks: list[dict[str, Any]]


@dataclass
class Alert:
    """One alert: ``due`` (to post) | ``skipped`` (with reason) | ``posted`` | ``failed``."""

    target: str
    status: str
    reason: str | None = None
    message: SlackMessage | None = None
    counts: dict[str, int] = field(default_factory=dict)
    references: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- client and routing


def make_slack_client(env: Mapping[str, str] | None = None, *, max_retries: int = 3) -> WebClient:
    """The real WebClient, retrying rate limits (honouring Retry-After) and dropped connections."""
    env = os.environ if env is None else env
    token = (env.get(TOKEN_ENV) or "").strip()
    if not token:
        raise ConfigError(f"{TOKEN_ENV} is not set; Slack alerts need a bot token (xoxb-…)")
    kwargs: dict[str, Any] = {}
    if env.get(API_URL_ENV):
        kwargs["base_url"] = env[API_URL_ENV]
    return WebClient(
        token=token,
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=1),
            RateLimitErrorRetryHandler(max_retry_count=max_retries),
        ],
        **kwargs,
    )


class OutboxSlack:
    """Slack's stand-in for the demo: each alert is written to the outbox as a message.

    Only ``alert_client`` makes one, in demo mode without a token, so the demo's alert jobs
    succeed and what they would have posted can be read on the Outbox page.
    """

    def __init__(self, outbox: Path, sender: str) -> None:
        self.outbox = outbox
        self.sender = sender
        self.note = (
            f"Slack is not configured ({TOKEN_ENV} is not set): in demo mode alerts are "
            f"written to the outbox {outbox} instead of being posted."
        )

    def chat_postMessage(  # Slack's own method name, so post_alerts takes either client
        self, *, channel: str, text: str, blocks: Sequence[Any] = (), link_names: bool = False
    ) -> dict[str, str]:
        headline = text.splitlines()[0] if text else "alert"
        # Not a mail (build_message takes exactly one mailbox): a note for the Outbox page,
        # addressed to the channel it stands in for, never handed to an SMTP server.
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = channel
        message["Subject"] = f"Slack alert for {channel}: {headline[:120]}"
        message.set_content(f"{self.note}\nChannel: {channel}\n\n{text}\n")
        (path,) = write_to_outbox(self.outbox, [message])
        return {"ts": f"outbox:{path.name}"}


def alert_client(policy: Policy, env: Mapping[str, str] | None = None) -> WebClient | OutboxSlack:
    """The Slack client; in demo mode without a token (and with an outbox), the outbox.

    Outside demo mode a missing token stays a ConfigError (exit 2): a real deployment must
    never believe an alert went out.
    """
    env = os.environ if env is None else env
    outbox = policy.smtp.outbox
    if policy.dashboard.demo_mode and outbox is not None and not (env.get(TOKEN_ENV) or "").strip():
        return OutboxSlack(outbox, policy.smtp.sender)
    return make_slack_client(env)


def route_channel(slack: SlackSettings, channel: str) -> str:
    """Outside production every alert goes to the test channel, so no one is paged by a trial."""
    if slack.production:
        return channel
    if not slack.test_channel:
        raise ConfigError(
            "slack.test_channel: missing; with slack.production = false every alert goes there"
        )
    return slack.test_channel


def _escape(value: object) -> str:
    """Slack's three control characters, escaped as its message format asks."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link(url: str, label: str) -> str:
    return f"<{url}|{_escape(label)}>"


def _count(n: int, noun: str, plural: str = "s") -> str:
    return f"{n} {noun}{plural if n != 1 else ''}"


def _test_prefix(slack: SlackSettings, intended: str) -> str:
    """In the test channel, say where the alert would have gone in production."""
    return "" if slack.production else f"[test, for {intended}] "


# ---------------------------------------------------------------- unreviewed batches


def pending_batches(session: Session) -> dict[str, tuple[int, int]]:
    """Per bucket: (pending batches, records in them), in one aggregate query."""
    rows = session.execute(
        select(
            DeletionBatch.bucket,
            func.count(distinct(DeletionBatch.id)),
            func.count(DeletionRecord.id),
        )
        .outerjoin(DeletionRecord, DeletionRecord.deletion_batch_id == DeletionBatch.id)
        .where(batch_pending)
        .group_by(DeletionBatch.bucket)
    ).all()
    return {bucket: (int(batches), int(records)) for bucket, batches, records in rows}


def batches_url(slack: SlackSettings, bucket: str) -> str:
    return f"{slack.dashboard_url.rstrip('/')}/deletion_batches?bucket={quote(bucket)}"


def unreviewed_batches_message(
    slack: SlackSettings,
    bucket: str,
    ops_channel: str,
    batches: int,
    records: int,
    handle: str | None,
) -> SlackMessage:
    url = batches_url(slack, bucket)
    what = f"{_count(batches, 'deletion batch', 'es')} ({_count(records, 'record')})"
    cc = f" cc {handle}" if handle else ""
    text = f"{_test_prefix(slack, ops_channel)}{what} in bucket {bucket} wait for review: {url}{cc}"
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"*{_escape(what)}* in bucket `{_escape(bucket)}` wait for review.",
            },
            "fields": [
                {"type": "mrkdwn", "text": f"*Bucket*\n{_escape(bucket)}"},
                {"type": "mrkdwn", "text": f"*Pending batches*\n{batches}"},
                {"type": "mrkdwn", "text": f"*Records*\n{records}"},
            ],
        },
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": _link(url, "Review them in Privacy Desk")},
        },
    ]
    if handle:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"cc {_escape(handle)}"}]}
        )
    return SlackMessage(route_channel(slack, ops_channel), text, blocks)


def plan_unreviewed_batch_alerts(
    session: Session, policy: Policy, today: date, *, force: bool = False
) -> list[Alert]:
    """For each bucket: the message due today, or why none is (logged).

    A bucket already alerted for ``today`` is skipped unless ``force``: alerts go out once a day.
    """
    pending = pending_batches(session)
    alerts = []
    for name, bucket in policy.buckets.items():
        batches, records = pending.get(name, (0, 0))
        counts = {"batches": batches, "records": records}
        if not bucket.ops_channel:
            reason = "no ops_channel configured"
        elif today.day not in bucket.ops_alert_days_of_month:
            days = ", ".join(str(d) for d in bucket.ops_alert_days_of_month)
            reason = f"not an alert day (day {today.day}; alert days: {days})"
        elif batches == 0:
            reason = "nothing pending review"
        else:
            message = unreviewed_batches_message(
                policy.slack, name, bucket.ops_channel, batches, records, bucket.ops_handle
            )
            alerts.append(Alert(name, AlertStatus.DUE, message=message, counts=counts))
            continue
        log_event("alert.skipped", bucket=name, reason=reason)
        alerts.append(Alert(name, AlertStatus.SKIPPED, reason=reason, counts=counts))
    if not force:
        skip_already_posted(session, alerts, target_type=BUCKET_TARGET, today=today)
    return alerts


# ---------------------------------------------------------------- DSAR deadlines


@dataclass(frozen=True)
class DeadlineItem:
    reference: str
    kind: str
    status: str
    due_at: datetime
    days_left: int


def dsar_deadlines(session: Session, today: date, within_days: int) -> list[DeadlineItem]:
    """Open requests due by the end of ``today + within_days`` (UTC) or overdue, soonest first."""
    # due_soon_and_overdue looks ``within_days`` past ``now``: make that the end of a day.
    end_of_today = datetime.combine(today + timedelta(days=1), time(), tzinfo=UTC)
    requests = due_soon_and_overdue(
        session, within_days=within_days, now=end_of_today - timedelta(microseconds=1)
    )
    now = end_of_today - timedelta(days=1)
    items = []
    for r in requests:
        due_at = effective_due_at(r).astimezone(UTC)
        items.append(DeadlineItem(r.reference, r.kind, r.status, due_at, days_left(due_at, now)))
    return items


def dsar_url(slack: SlackSettings, reference: str) -> str:
    return f"{slack.dashboard_url.rstrip('/')}/dsar_requests?reference={quote(reference)}"


def _when(days_left: int) -> str:
    if days_left < 0:
        return f"overdue by {_count(-days_left, 'day')}"
    if days_left == 0:
        return "due today"
    return f"{_count(days_left, 'day')} left"


def dsar_deadlines_message(
    slack: SlackSettings, dsar_channel: str, items: Sequence[DeadlineItem], within_days: int
) -> SlackMessage:
    overdue = sum(1 for i in items if i.days_left < 0)
    soon = len(items) - overdue
    head = f"DSAR deadlines: {overdue} overdue, {soon} due within {within_days} days"
    lines = [
        f"{i.reference} ({i.kind}, {i.status}): {_when(i.days_left)}, "
        f"due {i.due_at:%Y-%m-%d} {dsar_url(slack, i.reference)}"
        for i in items
    ]
    text = _test_prefix(slack, dsar_channel) + head + "\n" + "\n".join(lines)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{_escape(head)}*"}}
    ]
    for i in items[:MAX_LISTED_REQUESTS]:
        icon = ":red_circle:" if i.days_left < 0 else ":hourglass_flowing_sand:"
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"{icon} {_link(dsar_url(slack, i.reference), i.reference)} "
                    f"({_escape(i.kind)}, {_escape(i.status)}): *{_when(i.days_left)}* "
                    f"(due {i.due_at:%Y-%m-%d})",
                },
            }
        )
    if len(items) > MAX_LISTED_REQUESTS:
        more = len(items) - MAX_LISTED_REQUESTS
        url = f"{slack.dashboard_url.rstrip('/')}/dsar_requests"
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"…and {more} more: {_link(url, url)}"}],
            }
        )
    return SlackMessage(route_channel(slack, dsar_channel), text, blocks)


def plan_dsar_deadline_alert(
    session: Session,
    policy: Policy,
    today: date,
    within_days: int = DEFAULT_WITHIN_DAYS,
    *,
    force: bool = False,
) -> Alert:
    """The one deadline message due today, or why there is none (logged).

    Once posted for ``today`` it is skipped on reruns that day unless ``force``.
    """
    if within_days < 0:
        raise ConfigError(f"{{field}} must be 0 or more, got {within_days}", field="within_days")
    items = dsar_deadlines(session, today, within_days)
    overdue = sum(1 for i in items if i.days_left < 0)
    counts = {"overdue": overdue, "due_soon": len(items) - overdue}
    references = [i.reference for i in items]
    if not policy.slack.dsar_channel:
        reason = "no slack.dsar_channel configured"
    elif not items:
        reason = f"no open request due within {within_days} days or overdue"
    else:
        message = dsar_deadlines_message(
            policy.slack, policy.slack.dsar_channel, items, within_days
        )
        alert = Alert(
            DSAR_DEADLINES_TARGET,
            AlertStatus.DUE,
            message=message,
            counts=counts,
            references=references,
        )
        if not force:
            skip_already_posted(session, [alert], target_type=ALERT_TARGET, today=today)
        return alert
    log_event("alert.skipped", alert=DSAR_DEADLINES_TARGET, reason=reason)
    return Alert(
        DSAR_DEADLINES_TARGET,
        AlertStatus.SKIPPED,
        reason=reason,
        counts=counts,
        references=references,
    )


# ---------------------------------------------------------------- once a day


def posted_days(session: Session, target_type: str, target: str) -> set[date]:
    """The alert days on which ``target`` was already posted, read from the audit trail.

    The audit event is the proof of posting, so it is also the memory: a cron retry or a
    re-run Kubernetes job finds it and stays quiet. Events from before the day was recorded
    count for the UTC day they occurred on.
    """
    rows = session.execute(
        select(AuditEvent.details, AuditEvent.occurred_at).where(
            AuditEvent.action == "alert.posted",
            AuditEvent.target_type == target_type,
            AuditEvent.target_id == target,
        )
    ).all()
    days = set()
    for details, occurred_at in rows:
        day = (details or {}).get("day")
        days.add(date.fromisoformat(day) if day else occurred_at.astimezone(UTC).date())
    return days


def already_posted_reason(today: date) -> str:
    return f"already posted for {today.isoformat()}"


def skip_already_posted(
    session: Session, alerts: Sequence[Alert], *, target_type: str, today: date
) -> list[Alert]:
    """Mark each due alert already posted for ``today`` as skipped, so it is posted once a day.

    Returns the alerts it skipped. Callers that must post again (``force``) simply don't
    call this.
    """
    skipped = []
    for alert in alerts:
        if alert.status != AlertStatus.DUE:
            continue
        if today in posted_days(session, target_type, alert.target):
            alert.status = AlertStatus.SKIPPED
            alert.reason = already_posted_reason(today)
            log_event("alert.skipped", target=alert.target, reason=alert.reason)
            skipped.append(alert)
    return skipped


# ---------------------------------------------------------------- posting


def post_alerts(
    session: Session,
    client: WebClient | OutboxSlack,
    alerts: Sequence[Alert],
    *,
    actor: str,
    target_type: str,
    today: date,
) -> None:
    """Post every due alert; a Slack error is logged on that alert and the rest still go out.

    Each posted alert leaves an audit event (channel, counts and the alert day; DSARs by
    reference only), committed right after the post, which is what ``skip_already_posted``
    reads on a rerun.
    """
    for alert in alerts:
        if alert.status != AlertStatus.DUE or alert.message is None:
            continue
        message = alert.message
        try:
            response = client.chat_postMessage(
                channel=message.channel, text=message.text, blocks=message.blocks, link_names=True
            )
        except SlackApiError as exc:
            error = str(exc.response.get("error") or "unknown error")
            alert.status = AlertStatus.FAILED
            alert.reason = f"Slack said {error} (HTTP {exc.response.status_code})"
            log_event(
                "alert.failed", target=alert.target, channel=message.channel, error=alert.reason
            )
            continue
        except OSError as exc:  # Slack unreachable: the next alert may still get through
            alert.status, alert.reason = AlertStatus.FAILED, f"Slack unreachable: {exc}"
            log_event(
                "alert.failed", target=alert.target, channel=message.channel, error=alert.reason
            )
            continue
        alert.status = AlertStatus.POSTED
        log_event("alert.posted", target=alert.target, channel=message.channel)
        details: dict[str, Any] = {
            "channel": message.channel,
            "ts": response.get("ts"),
            "day": today.isoformat(),
            **alert.counts,
        }
        if alert.references:
            details["references"] = alert.references
        record_event(
            session,
            actor=actor,
            action="alert.posted",
            target_type=target_type,
            target_id=alert.target,
            details=details,
        )
        session.commit()


def today_utc(now: datetime | None = None) -> date:
    return (now or utcnow()).astimezone(UTC).date()
